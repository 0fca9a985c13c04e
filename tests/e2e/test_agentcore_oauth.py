"""OAuth2 credential providers through AgentCore's own clients against a real ``switchboard serve``:
boto3 manages them, the bedrock-agentcore SDK's ``@requires_access_token`` gets M2M and
USER_FEDERATION tokens unchanged, an application binds the user's session with
CompleteResourceTokenAuth, a user JWT becomes a workload token and is exchanged on the user's
behalf. The test OAuth server (tests/fixtures/oidc_server.py) plays the provider; a small
application on loopback plays the one the agent's users sign in to (AgentCore's session binding:
the browser comes back to it with a one-time ``session_id``, and it confirms the user it has signed
in with that; the agent's own ``sessionUri`` confirms nothing)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from botocore.exceptions import ClientError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.e2e.harness import ROOT, Served, create_tenant, serve
from tests.e2e.test_agentcore import REGION, ROLE, _access_key, _clients, _code, _run
from tests.fixtures.oidc_server import Browser, Issuer, running
from tests.support.servers import serve_app

pytestmark = pytest.mark.anyio

AUDIENCE = "sb-agents"


@dataclass
class App:
    """The application an agent's users sign in to: its return URL confirms the signed-in user."""

    url: str = ""
    data: Any = None  # a bedrock-agentcore client, signed with the application's access key
    confirmed: list[tuple[str, str, str]] = field(default_factory=list)  # (user, state, outcome)


def _application(app: App) -> Starlette:
    async def login(request: Request) -> PlainTextResponse:
        response = PlainTextResponse("signed in")
        response.set_cookie("app_user", request.query_params["user"])
        if request.query_params.get("token"):  # the user's JWT: the application confirms with it
            response.set_cookie("app_token", request.query_params["token"])
        return response

    async def back(request: Request) -> PlainTextResponse:
        user, token = request.cookies.get("app_user", ""), request.cookies.get("app_token")
        session, state = request.query_params["session_id"], request.query_params.get("state", "")
        who = {"userToken": token} if token else {"userId": user}

        def confirm() -> str:
            try:
                app.data.complete_resource_token_auth(sessionUri=session, userIdentifier=who)
            except ClientError as exc:
                return f"refused {exc.response['Error']['Code']}: {exc.response['Error']['Message']}"
            return f"bound {user}"

        outcome = await anyio.to_thread.run_sync(confirm)
        app.confirmed.append((user, state, outcome))
        return PlainTextResponse(outcome)

    return Starlette(routes=[Route("/login", login), Route("/back", back)])


@dataclass
class World:
    live: Served
    issuer: Issuer
    app: App
    key: dict[str, str]
    control: Any
    data: Any
    data_dir: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("agentcore-oauth")
    app = App()
    with running() as issuer, serve(root / "data") as live, serve_app(_application(app)) as app_url:
        key = _access_key(live)
        control, data = _clients(live, key)
        app.url, app.data = app_url, data
        # The tenant's JWT gateway: the authorizer user JWTs are checked against.
        control.create_gateway(
            name="users",
            roleArn=ROLE,
            authorizerType="CUSTOM_JWT",
            authorizerConfiguration={
                "customJWTAuthorizer": {
                    "discoveryUrl": f"{issuer.url}/.well-known/openid-configuration",
                    "allowedAudience": [AUDIENCE],
                }
            },
        )
        yield World(live, issuer, app, key, control, data, root / "data")


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def _custom(issuer: Issuer, **extra: Any) -> dict[str, Any]:
    discovery = {"discoveryUrl": f"{issuer.url}/.well-known/openid-configuration"}
    return {
        "customOauth2ProviderConfig": {
            "oauthDiscovery": discovery,
            "clientId": "agent",
            "clientSecret": "agent-secret",
            **extra,
        }
    }


def _user_jwt(issuer: Issuer, user: str, audience: str = AUDIENCE) -> str:
    now = int(time.time())
    return issuer.sign({"iss": issuer.url, "sub": user, "aud": audience, "iat": now, "exp": now + 300})


async def _provider(w: World, name: str, **config: Any) -> None:
    existing = await _run(lambda: w.control.list_oauth2_credential_providers(maxResults=20))
    if name not in [p["name"] for p in existing["credentialProviders"]]:
        await _run(
            lambda: w.control.create_oauth2_credential_provider(
                name=name,
                credentialProviderVendor="CustomOauth2",
                oauth2ProviderConfigInput=config or _custom(w.issuer),
            )
        )


async def _workload_token(w: World, workload: str, user: str | None, urls: list[str] | None = None) -> str:
    try:
        await _run(
            lambda: w.control.create_workload_identity(
                name=workload, allowedResourceOauth2ReturnUrls=urls or []
            )
        )
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "ConflictException"
    if user is None:
        made = await _run(lambda: w.data.get_workload_access_token(workloadName=workload))
    else:
        made = await _run(
            lambda: w.data.get_workload_access_token_for_user_id(workloadName=workload, userId=user)
        )
    return str(made["workloadAccessToken"])


async def test_boto3_creates_reads_lists_updates_and_deletes_providers(world: World) -> None:
    w = world
    made = await _run(
        lambda: w.control.create_oauth2_credential_provider(
            name="idp", credentialProviderVendor="CustomOauth2", oauth2ProviderConfigInput=_custom(w.issuer)
        )
    )
    assert made["credentialProviderArn"].endswith(":token-vault/default/oauth2credentialprovider/idp")
    assert made["callbackUrl"] == f"{w.live.base}/identity/oauth/callback"  # what the broker sends
    assert made["clientSecretSource"] == "MANAGED" and made["status"] == "READY"
    discovery = made["oauth2ProviderConfigOutput"]["customOauth2ProviderConfig"]["oauthDiscovery"]
    assert discovery == {"discoveryUrl": f"{w.issuer.url}/.well-known/openid-configuration"}

    github = await _run(
        lambda: w.control.create_oauth2_credential_provider(
            name="gh",
            credentialProviderVendor="GithubOauth2",
            oauth2ProviderConfigInput={
                "githubOauth2ProviderConfig": {"clientId": "Iv1.abc", "clientSecret": "gh-secret-7731"}
            },
        )
    )
    assert github["name"] == "gh"
    got = await _run(lambda: w.control.get_oauth2_credential_provider(name="gh"))
    assert got["credentialProviderVendor"] == "GithubOauth2"
    config = got["oauth2ProviderConfigOutput"]["githubOauth2ProviderConfig"]
    assert config["clientId"] == "Iv1.abc"
    assert config["oauthDiscovery"]["authorizationServerMetadata"] == {
        "issuer": "https://github.com",
        "authorizationEndpoint": "https://github.com/login/oauth/authorize",
        "tokenEndpoint": "https://github.com/login/oauth/access_token",
    }
    assert got["createdTime"] <= got["lastUpdatedTime"]

    first = await _run(lambda: w.control.list_oauth2_credential_providers(maxResults=1))
    assert len(first["credentialProviders"]) == 1 and first["nextToken"]
    rest = await _run(
        lambda: w.control.list_oauth2_credential_providers(maxResults=20, nextToken=first["nextToken"])
    )
    listed = {p["name"]: p["credentialProviderVendor"] for p in first["credentialProviders"]}
    listed.update({p["name"]: p["credentialProviderVendor"] for p in rest["credentialProviders"]})
    assert listed["gh"] == "GithubOauth2" and listed["idp"] == "CustomOauth2"

    updated = await _run(
        lambda: w.control.update_oauth2_credential_provider(
            name="gh",
            credentialProviderVendor="GithubOauth2",
            oauth2ProviderConfigInput={"githubOauth2ProviderConfig": {"clientId": "Iv1.def"}},
        )
    )
    assert updated["oauth2ProviderConfigOutput"]["githubOauth2ProviderConfig"]["clientId"] == "Iv1.def"
    assert updated["lastUpdatedTime"] >= got["lastUpdatedTime"]

    again = _code(
        lambda: w.control.create_oauth2_credential_provider(
            name="idp", credentialProviderVendor="CustomOauth2", oauth2ProviderConfigInput=_custom(w.issuer)
        )
    )
    assert again[0] == "ConflictException" and "idp" in again[2]

    # The client secrets are in the vault, sealed: not readable in the database.
    stored = b"".join(p.read_bytes() for p in w.data_dir.glob("switchboard.db*"))
    assert b"gh-secret-7731" not in stored and b"agent-secret" not in stored

    await _run(lambda: w.control.delete_oauth2_credential_provider(name="gh"))
    gone = await _run(lambda: _code(lambda: w.control.get_oauth2_credential_provider(name="gh")))
    assert gone[0] == "ResourceNotFoundException" and "gh" in gone[2]


def _sdk_env(w: World) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": w.key["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": w.key["aws_secret_access_key"],
        "AWS_REGION": REGION,
        "BEDROCK_AGENTCORE_CP_ENDPOINT": f"{w.live.base}/aws/agentcore-control",
        "BEDROCK_AGENTCORE_DP_ENDPOINT": f"{w.live.base}/aws/agentcore",
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
    }


M2M_AGENT = textwrap.dedent(
    """
    import asyncio
    from bedrock_agentcore.identity.auth import requires_access_token

    @requires_access_token(provider_name="service", auth_flow="M2M", scopes=["read", "write"])
    async def call(*, access_token: str) -> str:
        return access_token

    print("TOKEN=" + asyncio.run(call()))
    print("TOKEN=" + asyncio.run(call()))
    """
)


async def test_the_sdks_m2m_decorator_gets_a_client_credentials_token(world: World, tmp_path: Path) -> None:
    w = world
    await _provider(w, "service")
    before = w.issuer.grants.get("client_credentials", 0)
    done = await anyio.run_process(
        [sys.executable, "-c", M2M_AGENT], cwd=tmp_path, env=_sdk_env(w), check=False
    )
    out = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, out
    tokens = [
        line.removeprefix("TOKEN=") for line in done.stdout.decode().splitlines() if line.startswith("TOKEN=")
    ]
    assert len(tokens) == 2 and tokens[0] == tokens[1], out  # the second call is the cached token
    claims = _claims(tokens[0])
    assert (
        claims["iss"] == w.issuer.url and claims["sub"] == "client:agent" and claims["scope"] == "read write"
    )
    assert w.issuer.grants.get("client_credentials", 0) - before == 1


FEDERATED_AGENT = textwrap.dedent(
    """
    import asyncio, sys
    from bedrock_agentcore.identity.auth import requires_access_token

    def show(url: str) -> None:
        print("AUTH_URL=" + url, flush=True)

    @requires_access_token(
        provider_name="idp3",
        auth_flow="USER_FEDERATION",
        scopes=["openid", "profile"],
        on_auth_url=show,
        callback_url=sys.argv[1],
        custom_state="app-state-1",
    )
    async def call(*, access_token: str) -> str:
        return access_token

    print("TOKEN=" + asyncio.run(call()), flush=True)
    print("TOKEN=" + asyncio.run(call()), flush=True)
    """
)


class Output:
    """A running process's output, read line by line as it comes."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self.partial = ""
        self.unread: list[str] = []
        self.lines: list[str] = []  # everything so far (for failure messages)

    async def next(self, prefix: str) -> str:
        """The rest of the next line that starts with ``prefix``."""
        assert self.process.stdout is not None
        while True:
            for i, line in enumerate(self.unread):
                if line.startswith(prefix):
                    del self.unread[: i + 1]
                    return line.removeprefix(prefix)
            self.unread.clear()
            try:
                chunk = await self.process.stdout.receive()
            except anyio.EndOfStream:
                raise AssertionError(f"no {prefix} line:\n" + "\n".join(self.lines)) from None
            *done, self.partial = (self.partial + chunk.decode()).split("\n")
            self.unread += done
            self.lines += done


async def test_the_sdks_user_federation_binds_the_users_token_through_the_application(
    world: World, tmp_path: Path
) -> None:
    w = world
    metadata = {
        "issuer": w.issuer.url,
        "authorizationEndpoint": f"{w.issuer.url}/authorize",
        "tokenEndpoint": f"{w.issuer.url}/token",
    }
    await _provider(
        w,
        "idp3",
        customOauth2ProviderConfig={
            "oauthDiscovery": {"authorizationServerMetadata": metadata},
            "clientId": "agent",
            "clientSecret": "agent-secret",
        },
    )
    back = f"{w.app.url}/back"
    await _workload_token(w, "agent-3lo", None, [back])
    (tmp_path / ".agentcore.json").write_text(
        json.dumps({"workload_identity_name": "agent-3lo", "user_id": "alice"})
    )
    with anyio.fail_after(90):
        async with await anyio.open_process(
            [sys.executable, "-u", "-c", FEDERATED_AGENT, back],
            cwd=tmp_path,
            env=_sdk_env(w),
            stderr=subprocess.STDOUT,
        ) as process:
            output = Output(process)
            try:
                link = await output.next("AUTH_URL=")
                assert link.startswith(f"{w.issuer.url}/authorize?") and "code_challenge_method=S256" in link
                assert "scope=openid+profile" in link
                async with Browser(w.issuer, "alice") as browser:
                    await browser.open(f"{w.app.url}/login?user=alice")  # signed in at the application
                    page = await browser.open(link)  # the provider, our callback, the application
                assert page.status_code == 200 and page.text == "bound alice", page.text
                assert w.app.confirmed[-1] == ("alice", "app-state-1", "bound alice")
                first, second = await output.next("TOKEN="), await output.next("TOKEN=")
                assert await process.wait() == 0, output.lines
            finally:
                if process.returncode is None:
                    process.kill()
    assert first == second and _claims(first)["sub"] == "alice"  # the second call needed no consent
    assert [line for line in output.lines if line.startswith("AUTH_URL=")] == [f"AUTH_URL={link}"]


async def test_a_forwarded_link_binds_nothing_and_a_forced_session_waits_for_the_user(world: World) -> None:
    w = world
    await _provider(w, "idp")
    back = f"{w.app.url}/back"
    token = await _workload_token(w, "agent-fwd", "carol", [back])
    ask = {
        "workloadIdentityToken": token,
        "resourceCredentialProviderName": "idp",
        "scopes": ["openid"],
        "oauth2Flow": "USER_FEDERATION",
        "resourceOauth2ReturnUrl": back,
    }
    started = await _run(lambda: w.data.get_resource_oauth2_token(**ask))
    assert started["sessionStatus"] == "IN_PROGRESS" and started["sessionUri"].startswith(
        "urn:ietf:params:oauth:request_uri:"
    )
    early = await _run(
        lambda: _code(
            lambda: w.data.complete_resource_token_auth(
                sessionUri=started["sessionUri"], userIdentifier={"userId": "carol"}
            )
        )
    )
    assert early[0] == "ValidationException" and "session_id" in early[2], early  # the agent's URI

    # Carol forwards her link to Dave; the application sees Dave signed in and is refused.
    async with Browser(w.issuer, "dave") as browser:
        await browser.open(f"{w.app.url}/login?user=dave")
        page = await browser.open(started["authorizationUrl"])
    assert page.text.startswith("refused AccessDeniedException"), page.text
    polled = await _run(lambda: w.data.get_resource_oauth2_token(**ask, sessionUri=started["sessionUri"]))
    assert polled["sessionStatus"] == "FAILED" and "accessToken" not in polled
    async with Browser(w.issuer, "carol") as browser:  # the failed session's link stays dead
        await browser.open(f"{w.app.url}/login?user=carol")
        page = await browser.open(started["authorizationUrl"])
    assert page.status_code == 400 and "answered already" in page.text, page.text
    polled = await _run(lambda: w.data.get_resource_oauth2_token(**ask, sessionUri=started["sessionUri"]))
    assert polled["sessionStatus"] == "FAILED"

    # Without a return URL nothing could tie the confirmation to the browser: refused.
    without = {k: v for k, v in ask.items() if k != "resourceOauth2ReturnUrl"}
    refused = await _run(lambda: _code(lambda: w.data.get_resource_oauth2_token(**without)))
    assert refused[0] == "ValidationException" and "resourceOauth2ReturnUrl" in refused[2], refused

    # Asked again, Carol gets a new session; the application confirms her with her own JWT.
    again = await _run(lambda: w.data.get_resource_oauth2_token(**ask))
    assert again["sessionUri"] != started["sessionUri"]
    async with Browser(w.issuer, "carol") as browser:
        await browser.open(f"{w.app.url}/login?user=carol&token={_user_jwt(w.issuer, 'carol')}")
        page = await browser.open(again["authorizationUrl"])
    assert page.status_code == 200 and page.text == "bound carol", page.text
    used = await _run(
        lambda: _code(
            lambda: w.data.complete_resource_token_auth(
                sessionUri=again["sessionUri"], userIdentifier={"userId": "carol"}
            )
        )
    )
    assert used[0] == "ValidationException" and "session_id" in used[2], used
    got = await _run(lambda: w.data.get_resource_oauth2_token(**ask, sessionUri=again["sessionUri"]))
    assert _claims(got["accessToken"])["sub"] == "carol"
    plain = await _run(lambda: w.data.get_resource_oauth2_token(**ask))
    assert plain["accessToken"] == got["accessToken"]

    # forceAuthentication: a new session, and its polls wait for the user, not the old token.
    forced = await _run(lambda: w.data.get_resource_oauth2_token(**ask, forceAuthentication=True))
    assert forced["sessionStatus"] == "IN_PROGRESS" and "accessToken" not in forced
    waiting = await _run(lambda: w.data.get_resource_oauth2_token(**ask, sessionUri=forced["sessionUri"]))
    assert waiting["sessionStatus"] == "IN_PROGRESS" and "accessToken" not in waiting


async def test_a_user_jwt_becomes_a_workload_token_exchanged_on_the_users_behalf(world: World) -> None:
    w = world
    exchange = {"grantType": "TOKEN_EXCHANGE", "tokenExchangeGrantTypeConfig": {"actorTokenContent": "NONE"}}
    await _provider(w, "obo", **_custom(w.issuer, onBehalfOfTokenExchangeConfig=exchange))
    await _workload_token(w, "agent-obo", None)
    made = await _run(
        lambda: w.data.get_workload_access_token_for_jwt(
            workloadName="agent-obo", userToken=_user_jwt(w.issuer, "frank")
        )
    )
    got = await _run(
        lambda: w.data.get_resource_oauth2_token(
            workloadIdentityToken=made["workloadAccessToken"],
            resourceCredentialProviderName="obo",
            scopes=[],
            oauth2Flow="ON_BEHALF_OF_TOKEN_EXCHANGE",
            audiences=["https://api.example/"],
        )
    )
    claims = _claims(got["accessToken"])
    assert (
        claims["sub"] == "frank"
        and claims["act"] == {"sub": "agent"}
        and claims["aud"] == "https://api.example/"
    )

    wrong = await _run(
        lambda: _code(
            lambda: w.data.get_workload_access_token_for_jwt(
                workloadName="agent-obo", userToken=_user_jwt(w.issuer, "frank", audience="elsewhere")
            )
        )
    )
    assert wrong[0] == "UnauthorizedException" and "users" in wrong[2] and "elsewhere" in wrong[2], wrong


async def test_refusals_name_the_problem_with_the_models_errors(world: World) -> None:
    w = world
    await _provider(w, "idp")
    plain = await _workload_token(w, "agent-plain", None)
    alice = await _workload_token(w, "agent-plain", "alice")
    acme_admin = await create_tenant(w.data_dir, "acme")
    acme_control, acme_data = _clients(w.live, _access_key(w.live, acme_admin))
    await _run(lambda: acme_control.create_workload_identity(name="acme-agent"))
    foreign = await _run(
        lambda: acme_data.get_workload_access_token_for_user_id(workloadName="acme-agent", userId="x")
    )
    control, data = _clients(w.live, w.key, validate=False)

    def token(wat: str, name: str = "idp", flow: str = "USER_FEDERATION", **more: Any) -> Callable[[], Any]:
        return lambda: data.get_resource_oauth2_token(
            workloadIdentityToken=wat, resourceCredentialProviderName=name, scopes=[], oauth2Flow=flow, **more
        )

    def create(vendor: str, config: dict[str, Any]) -> Callable[[], Any]:
        return lambda: control.create_oauth2_credential_provider(
            name="refused", credentialProviderVendor=vendor, oauth2ProviderConfigInput=config
        )

    external = {"secretId": "arn:aws:secretsmanager:us-west-2:123456789012:secret:x", "jsonKey": "k"}
    discovered = {
        k: v for k, v in _custom(w.issuer)["customOauth2ProviderConfig"].items() if k != "clientSecret"
    }
    unsigned = base64.urlsafe_b64encode(b'{"alg":"RS256"}').decode().rstrip("=") + ".e30.c2ln"
    cases: list[tuple[str, Callable[[], Any], str, tuple[str, ...]]] = [
        ("unknown provider", token(alice, "nothing-here"), "ResourceNotFoundException", ("nothing-here",)),
        (
            "another tenant's token",
            token(foreign["workloadAccessToken"]),
            "AccessDeniedException",
            ("tenant",),
        ),
        (
            "return URL not allowed",
            token(alice, resourceOauth2ReturnUrl="https://evil.example/cb"),
            "ValidationException",
            ("https://evil.example/cb", "agent-plain", "allowedResourceOauth2ReturnUrls"),
        ),
        ("no user", token(plain), "ValidationException", ("GetWorkloadAccessTokenForUserId",)),
        (
            "exchange without a user JWT",
            token(alice, flow="ON_BEHALF_OF_TOKEN_EXCHANGE"),
            "ValidationException",
            ("GetWorkloadAccessTokenForJWT",),
        ),
        (
            "unsupported vendor",
            create(
                "LinkedinOauth2", {"linkedinOauth2ProviderConfig": {"clientId": "c", "clientSecret": "s"}}
            ),
            "ValidationException",
            ("LinkedinOauth2", "CustomOauth2"),
        ),
        (
            "included vendor without endpoints",
            create("OktaOauth2", {"includedOauth2ProviderConfig": {"clientId": "c"}}),
            "ValidationException",
            ("OktaOauth2", "CustomOauth2"),
        ),
        (
            "EXTERNAL secret",
            create(
                "CustomOauth2", {"customOauth2ProviderConfig": {**discovered, "clientSecretConfig": external}}
            ),
            "ValidationException",
            ("Secrets Manager", "clientSecret"),
        ),
        (
            "vendor and configuration apart",
            create("GoogleOauth2", {"githubOauth2ProviderConfig": {"clientId": "c"}}),
            "ValidationException",
            ("GoogleOauth2", "googleOauth2ProviderConfig"),
        ),
        (
            "unknown session",
            lambda: data.complete_resource_token_auth(
                sessionUri="urn:ietf:params:oauth:request_uri:made-up", userIdentifier={"userId": "alice"}
            ),
            "ResourceNotFoundException",
            ("session",),
        ),
        (
            "a JWT no gateway accepts",
            lambda: data.get_workload_access_token_for_jwt(workloadName="agent-plain", userToken=unsigned),
            "UnauthorizedException",
            ("users",),
        ),
    ]
    for name, call, code, mentions in cases:
        got, status, message = await _run(lambda call=call: _code(call))  # type: ignore[misc]
        assert got == code, (name, got, message)
        assert status < 500, (name, status)
        for mention in mentions:
            assert mention.lower() in message.lower(), (name, message)


async def test_each_operation_answers_the_models_minimal_request_in_its_terms(world: World) -> None:
    """As for every AgentCore operation Switchboard serves: the model's minimal valid request gets a
    result or one of the operation's modelled errors, never a 5xx."""
    from botocore import xform_name

    from gateway.agentcore import _oauth
    from gateway.agentcore._examples import example_input

    control, data = _clients(world.live, world.key)
    served = [(control, n) for n in sorted(_oauth.CONTROL)] + [(data, n) for n in sorted(_oauth.DATA)]
    problems = []
    for client, name in served:
        operation = client.meta.service_model.operation_model(name)
        method, params = getattr(client, xform_name(name)), example_input(operation)
        try:
            await _run(lambda method=method, params=params: method(**params))  # type: ignore[misc]
        except ClientError as exc:
            code, status = exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]
            if status >= 500 or code not in {e.name for e in operation.error_shapes}:
                problems.append((name, code, status, exc.response["Error"].get("Message")))
    assert problems == []


async def test_a_hosted_agents_m2m_decorator_gets_its_token_from_the_sandbox(world: World) -> None:
    """The same decorator in an agent hosted by the runtime (ADR 0041): the invocation's workload
    access token and the runtime's own key, through the gateway's link, from a sandbox."""
    from sandbox import available
    from tests.support.tools import need

    need(available() is None, f"bubblewrap sandboxes: {available()}")
    w = world
    await _provider(w, "service")
    agent = ROOT / "tests" / "fixtures" / "runtime_agent"
    command = [sys.executable, "-m", "gateway.cli", "runtime", "deploy", str(agent), "--name", "oauthed"]
    deployed = await anyio.run_process([*command, "--data-dir", str(w.data_dir)], cwd=ROOT, check=False)
    assert deployed.returncode == 0, deployed.stderr.decode()
    before = w.issuer.grants.get("client_credentials", 0)

    def invoke() -> dict[str, Any]:
        answer = w.data.invoke_agent_runtime(
            agentRuntimeArn="oauthed", runtimeSessionId="o" * 40, payload=json.dumps({"oauth": "service"})
        )
        found: dict[str, Any] = json.loads(answer["response"].read())
        return found

    found = await _run(invoke)
    assert "access_token" in found, found
    claims = _claims(found["access_token"])
    assert (
        claims["iss"] == w.issuer.url and claims["sub"] == "client:agent" and claims["scope"] == "read write"
    )
    assert w.issuer.grants.get("client_credentials", 0) - before in (0, 1)  # (the vault may hold it already)
