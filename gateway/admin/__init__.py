"""The admin HTTP API: gateways and targets, CRUD, under ``/admin/v1``; its OpenAPI document
at ``/admin/openapi.json``.

Every request needs ``Authorization: Bearer <admin key>``; the key decides the
tenant, and every read and write is scoped to it. A write is compiled (the
targets built, the catalog checked) before it is stored, so a bad change is
refused with the problem located and nothing stored is touched.
"""

from gateway.admin.api import admin_routes, openapi_document

__all__ = ["admin_routes", "openapi_document"]
