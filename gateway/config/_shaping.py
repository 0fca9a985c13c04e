"""Configuration of shaped OpenAPI operations (`shape:` and `failure:` on a target):
uniform paging, trimmed results, failures reported inside a 2xx answer. See gateway/openapi/shaping.py."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from gateway.core.model import Model


class PagingSpec(Model):
    """How a list operation pages. The tool then takes `cursor` and `limit` and answers
    `{"items": [...], "next_cursor": "..."}` whatever the API's own scheme."""

    style: Literal["token", "url", "offset", "page"] = Field(
        description=(
            "token: the next page's token is read from `next` and sent in `cursor`; url: `next` is the "
            "next page's URL, followed as given; offset: `cursor` takes the index of the first item; "
            "page: `cursor` takes the page number (1, 2, ...) and `total` names the number of pages."
        )
    )
    next: str | None = Field(
        None,
        description="Where the next page is named: a dotted path in the body, or 'header:Link' (RFC 8288).",
    )
    next_param: str | None = Field(
        None, description="token style, when `next` is a URL: the query parameter of it that is the token."
    )
    cursor: str | None = Field(None, description="The request parameter that takes the token or offset.")
    limit: str | None = Field(None, description="The request parameter that takes the page size.")
    max_limit: int | None = Field(None, ge=1, description="The largest page size the API accepts.")
    total: str | None = Field(
        None, description="offset: dotted path of the item count in the body; page: of the page count."
    )
    follow: list[str] = Field(
        default_factory=list,
        description="url style: other operations (tool names) a next-page URL names (Salesforce queryMore).",
    )

    @model_validator(mode="after")
    def _complete(self) -> PagingSpec:
        if self.style in ("token", "url") and not self.next:
            raise ValueError(f"paging style {self.style!r} needs `next` (where the next page is named)")
        if self.style in ("token", "offset", "page") and not self.cursor:
            raise ValueError(f"paging style {self.style!r} needs `cursor` (the request parameter)")
        if self.style in ("offset", "page") and not self.total:
            raise ValueError(f"paging style {self.style!r} needs `total` (where the body gives the count)")
        return self


class ShapeSpec(Model):
    """What a tool's result keeps, and how it pages."""

    items: str | None = Field(
        None, description="Dotted path of the list in the response body ('' for a body that is a list)."
    )
    fields: list[str] | None = Field(
        None,
        description="Dotted paths kept of each item (or of the body without a list); omit: all.",
    )
    paging: PagingSpec | None = None

    @model_validator(mode="after")
    def _items_for_paging(self) -> ShapeSpec:
        if self.paging is not None and self.items is None:
            raise ValueError("paging needs `items` (where the list is in the response body)")
        return self


class FailureSpec(Model):
    """An API that answers HTTP 200 with a failure flag in the body."""

    field: str = Field(description="Dotted path of the flag, e.g. 'ok'.")
    equals: Any = Field(False, description="The flag's value that means failure.")
    message: str | None = Field(None, description="Dotted path of the error message, e.g. 'error'.")
