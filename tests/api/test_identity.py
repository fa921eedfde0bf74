"""Identity and API hardening: sign-in, sessions, tokens, partner clients, limits."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select, update

from api.app import create_app
from api.identity import set_password
from api.ratelimit import RateLimiter
from domain import models as m
from domain.session import system_session
from tests.api.test_query_count import count_statements
from tests.conftest import Api

SIGN_IN = """mutation($u: String!, $p: String!) { signIn(username: $u, password: $p) {
  accessToken refreshToken expiresIn errors { code message } } }"""
REFRESH = """mutation($r: String!) { refreshSession(refreshToken: $r) {
  accessToken refreshToken errors { code } } }"""
PASSWORD = "correct horse battery staple"


def gid(type_name: str, number: int) -> str:
    return base64.b64encode(f"{type_name}:{number}".encode()).decode()


async def _with_password(api: Api, username: str) -> None:
    assert await set_password(api.engine, username, PASSWORD)


async def _viewer(api: Api, token: str) -> int:
    r = await api.post({"query": "{ viewer { roles } }"}, {"Authorization": f"Bearer {token}"})
    return r.status_code


async def test_sign_in_refresh_rotation_and_sign_out(api: Api) -> None:
    await _with_password(api, "counselor")
    signed = (await api.data(None, SIGN_IN, {"u": "counselor", "p": PASSWORD}))["signIn"]
    assert signed["errors"] == [] and signed["expiresIn"] == 900
    header = jwt.get_unverified_header(signed["accessToken"])
    assert header == {"alg": "EdDSA", "typ": "at+jwt"}
    claims = jwt.decode(signed["accessToken"], options={"verify_signature": False})
    assert claims["roles"] == ["counsellor"] and isinstance(claims["unit"], int)
    assert {"iss", "aud", "sub", "exp", "iat", "jti"} <= claims.keys()
    assert await _viewer(api, signed["accessToken"]) == 200
    rotated = (await api.data(None, REFRESH, {"r": signed["refreshToken"]}))["refreshSession"]
    assert rotated["errors"] == [] and rotated["refreshToken"] != signed["refreshToken"]
    # Replaying the used refresh token ends the whole family, the new one included.
    replay = (await api.data(None, REFRESH, {"r": signed["refreshToken"]}))["refreshSession"]
    assert replay["errors"][0]["code"] == "INVALID_REFRESH_TOKEN"
    after = (await api.data(None, REFRESH, {"r": rotated["refreshToken"]}))["refreshSession"]
    assert after["errors"][0]["code"] == "INVALID_REFRESH_TOKEN"
    # Signing out revokes the access token at once.
    fresh = (await api.data(None, SIGN_IN, {"u": "counselor", "p": PASSWORD}))["signIn"]
    out = await api.post(
        {
            "query": "mutation($r: String) { signOut(refreshToken: $r) { ok } }",
            "variables": {"r": fresh["refreshToken"]},
        },
        {"Authorization": f"Bearer {fresh['accessToken']}"},
    )
    assert out.json()["data"]["signOut"]["ok"] is True
    assert await _viewer(api, fresh["accessToken"]) == 401


async def test_lockout_triggers_reveals_nothing_and_recovers(api: Api) -> None:
    await _with_password(api, "civil")
    codes = []
    for _ in range(6):
        r = (await api.data(None, SIGN_IN, {"u": "civil", "p": "wrong password"}))["signIn"]
        codes.append(r["errors"][0]["code"])
    assert codes[:5] == ["INVALID_CREDENTIALS"] * 5 and codes[5] == "ACCOUNT_LOCKED"
    right = (await api.data(None, SIGN_IN, {"u": "civil", "p": PASSWORD}))["signIn"]
    assert right["errors"][0]["code"] == "ACCOUNT_LOCKED"
    ghost = []
    for _ in range(6):
        r = (await api.data(None, SIGN_IN, {"u": "no.such.user", "p": "x"}))["signIn"]
        ghost.append(r["errors"][0]["code"])
    assert ghost == codes, "an unknown username behaves exactly like a known one"
    async with system_session(api.engine, reason="test: the lockout window passes") as s:
        await s.execute(update(m.LoginAttempt).values(at=datetime.now(UTC) - timedelta(minutes=16)))
        await s.commit()
    assert (await api.data(None, SIGN_IN, {"u": "civil", "p": PASSWORD}))["signIn"]["accessToken"]


def _forge(api: Api, **changes: object) -> str:
    tokens = api.app.state.tokens
    now = int(time.time())
    claims = {
        "iss": tokens.issuer,
        "aud": tokens.audience,
        "sub": str(api.district.staff["admin"]),
        "iat": now,
        "nbf": now,
        "exp": now + 60,
        "jti": "t-" + str(now),
    }
    headers = {"typ": "at+jwt"}
    key = tokens._private
    alg = "EdDSA"
    for k, v in changes.items():
        if k == "alg":
            alg = str(v)
        elif k == "key":
            key = v
        elif k == "typ":
            headers["typ"] = str(v)
        else:
            claims[k] = v
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


async def test_bad_tokens_are_refused(api: Api) -> None:
    now = int(time.time())
    public_pem = api.app.state.tokens._public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    good = _forge(api)
    assert await _viewer(api, good) == 200
    header, payload, signature = good.split(".")
    none_header = (
        base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "at+jwt"}).encode())
        .decode()
        .rstrip("=")
    )
    bad = {
        "expired": _forge(api, exp=now - 10, iat=now - 100, nbf=now - 100),
        "not yet valid": _forge(api, nbf=now + 600),
        "wrong audience": _forge(api, aud="someone-else"),
        "wrong issuer": _forge(api, iss="evil"),
        "wrong type": _forge(api, typ="JWT"),
        "tampered": f"{header}.{payload[:-2]}AA.{signature}",
        "alg none": f"{none_header}.{payload}.",
        "hs256 with the public key": _hs256(good, public_pem),
        "no jti": _forge(api, jti=None),
    }
    for name, token in bad.items():
        assert await _viewer(api, token) == 401, name


def _hs256(good: str, secret: bytes) -> str:
    """HMAC-signed with the public key as the secret (the classic algorithm-confusion attack),
    built by hand because a careful library refuses to do it."""
    import hashlib
    import hmac

    head = (
        base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "at+jwt"}).encode())
        .decode()
        .rstrip("=")
    )
    body = good.split(".")[1]
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{base64.urlsafe_b64encode(sig).decode().rstrip('=')}"


REGISTER = """mutation($in: RegisterPartnerClientInput!) { registerPartnerClient(input: $in) {
  client { id clientId scopes } clientSecret errors { code field } } }"""
CASE_DOC = "query Referred($id: ID!) { node(id: $id) { ... on Case { status presentingProblem redactedFields } } }"


async def _token(
    api: Api, client_id: str, secret: str, basic: bool = False
) -> tuple[int, dict[str, object]]:
    import httpx

    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        if basic:
            auth = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
            r = await client.post(
                "/oauth/token",
                content="grant_type=client_credentials",
                headers={
                    "Authorization": f"Basic {auth}",
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
        else:
            r = await client.post(
                "/oauth/token",
                content=(
                    f"grant_type=client_credentials&client_id={client_id}&client_secret={secret}"
                ),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
    return r.status_code, r.json()


async def test_partner_client_lifecycle(api: Api) -> None:
    referred = api.district.records[1]["referred_case"]
    reg = (
        await api.data(
            "admin",
            REGISTER,
            {
                "in": {
                    "name": "晨光对接系统",
                    "unit": gid("Unit", api.district.units["partner"]),
                    "scopes": ["read:case_admin", "op:read_referred_cases"],
                }
            },
        )
    )["registerPartnerClient"]
    assert reg["errors"] == [] and reg["clientSecret"]
    client_id, secret, client_gid = (
        reg["client"]["clientId"],
        reg["clientSecret"],
        reg["client"]["id"],
    )
    bad_scope = await api.data(
        "admin",
        REGISTER,
        {
            "in": {
                "name": "x",
                "unit": gid("Unit", api.district.units["partner"]),
                "scopes": ["read:everything"],
            }
        },
    )
    assert bad_scope["registerPartnerClient"]["errors"][0]["code"] == "INVALID_SCOPE"
    status, wrong = await _token(api, client_id, "not-the-secret")
    assert status == 401 and wrong == {"error": "invalid_client"}
    form = await _token(api, client_id, secret)
    assert form[0] == 200, (form, client_id, secret)
    status, issued = await _token(api, client_id, secret, basic=True)
    assert status == 200, (issued, client_id, secret)
    assert issued["token_type"] == "Bearer" and issued["expires_in"] == 600
    auth = {"Authorization": f"Bearer {issued['access_token']}"}
    ad_hoc = await api.post({"query": CASE_DOC, "variables": {"id": gid("Case", referred)}}, auth)
    assert ad_hoc.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED"
    digest = (
        await api.data(
            "admin",
            """mutation($d: String!, $c: ID) { registerPersistedQuery(
        document: $d, client: $c, name: "referred case") { sha256 errors { code } } }""",
            {"d": CASE_DOC, "c": client_gid},
        )
    )["registerPersistedQuery"]["sha256"]
    api.app.state.graphql.registries._cache.clear()
    by_hash = await api.post(
        {
            "variables": {"id": gid("Case", referred)},
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}},
        },
        auth,
    )
    node = by_hash.json()["data"]["node"]
    assert node["status"], "case_admin is in the client's scopes"
    assert node["presentingProblem"] is None and "presentingProblem" in node["redactedFields"], (
        "narrative is shared by the referral but not in the client's scopes"
    )
    introspect = await api.post({"query": "{ __schema { types { name } } }"}, auth)
    assert introspect.json().get("data") is None
    # The referral ends (consent withdrawn): the client loses the case on its next request.
    async with system_session(api.engine, reason="test: withdraw consent") as s:
        consent = (
            (await s.execute(select(m.Referral.consent_id).where(m.Referral.case_id == referred)))
            .scalars()
            .first()
        )
        await s.execute(
            update(m.Consent).where(m.Consent.id == consent).values(withdrawn_at=datetime.now(UTC))
        )
        await s.commit()
    gone = await api.post(
        {
            "variables": {"id": gid("Case", referred)},
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}},
        },
        auth,
    )
    assert gone.json()["data"]["node"] is None
    async with system_session(api.engine, reason="test: restore consent") as s:
        await s.execute(update(m.Consent).where(m.Consent.id == consent).values(withdrawn_at=None))
        await s.commit()
    # Rotating the secret: the old one fails; revoking: the live token stops working.
    rotation = (
        await api.data(
            "admin",
            "mutation($id: ID!) { rotatePartnerSecret(id: $id) { clientSecret errors { code } } }",
            {"id": client_gid},
        )
    )["rotatePartnerSecret"]
    assert rotation["errors"] == [], rotation
    rotated = rotation["clientSecret"]
    assert (await _token(api, client_id, secret))[0] == 401
    assert (await _token(api, client_id, rotated))[0] == 200
    await api.data(
        "admin",
        "mutation($id: ID!) { revokePartnerClient(id: $id) { client { revokedAt } } }",
        {"id": client_gid},
    )
    after = await api.post(
        {
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}},
            "variables": {"id": gid("Case", referred)},
        },
        auth,
    )
    assert after.status_code == 401


async def test_bombs_are_refused_before_any_database_work(api: Api) -> None:
    deep = "{ cases { edges { node { subject { families { family { members { person { cases { interventions { case { subject { id } } } } } } } } } } } } }"
    aliases = "{ " + " ".join(f"a{i}: viewer {{ roles }}" for i in range(20)) + " }"
    costly = "{ cases(first: 100) { edges { node { interventions(first: 100) { id } assessments(first: 100) { id } } } } }"
    token = api.token("zongzhi")
    # Warm up authentication's own queries, then count only what the operation causes.
    for document, code in ((deep, None), (aliases, None), (costly, "QUERY_TOO_EXPENSIVE")):
        with count_statements(api.engine) as statements:
            r = await api.post({"query": document}, {"Authorization": f"Bearer {token}"})
        body = r.json()
        assert body.get("data") is None and body["errors"], document[:30]
        if code:
            assert body["errors"][0]["extensions"]["code"] == code
        auth_only = [
            s for s in statements if "access_events" not in s and "audit_chain_head" not in s
        ]
        assert len(auth_only) <= 5, statements  # token revocation + subject: nothing for the query
        assert not [s for s in statements if "FROM cases" in s or "FROM persons" in s]
    batch = await api.post(
        [{"query": "{ viewer { roles } }"}] * 3, {"Authorization": f"Bearer {token}"}
    )
    assert batch.status_code == 400


async def test_rate_limits_trigger_and_recover(api: Api) -> None:
    app = create_app(replace(api.app.state.settings, rate_limit_per_minute=3))
    app.state.graphql.request_limiter = RateLimiter(3, 1.0)
    limited = Api(api.backend, app, app.state.engine, api.district, api.url)
    auth = {"Authorization": f"Bearer {limited.token('grid.donghu')}"}
    codes = []
    for _ in range(4):
        body = (await limited.post({"query": "{ viewer { roles } }"}, auth)).json()
        codes.append(body["errors"][0]["extensions"]["code"] if body.get("errors") else "OK")
    assert codes == ["OK", "OK", "OK", "RATE_LIMITED"]
    fresh_token = await limited.gql("grid.donghu", "{ viewer { roles } }")
    assert fresh_token["errors"][0]["extensions"]["code"] == "RATE_LIMITED", (
        "a new token does not buy a new budget: it is per account"
    )
    other = await limited.gql("social.donghu", "{ viewer { roles } }")
    assert other["data"]["viewer"], "another account has its own budget"
    await asyncio.sleep(1.1)
    assert (await limited.post({"query": "{ viewer { roles } }"}, auth)).json()["data"]["viewer"]
    await app.state.engine.dispose()


async def test_cors_allows_only_configured_origins(api: Api) -> None:
    import httpx

    app = create_app(replace(api.app.state.settings, cors_origins=("https://app.example.org",)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        headers = {
            "Origin": "https://app.example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        }
        ok = await client.options("/graphql", headers=headers)
        assert ok.headers.get("access-control-allow-origin") == "https://app.example.org"
        evil = await client.options(
            "/graphql", headers={**headers, "Origin": "https://evil.example"}
        )
        assert evil.headers.get("access-control-allow-origin") is None
    await app.state.engine.dispose()


@pytest.mark.parametrize("user", ["grid.donghu"])
async def test_unauthenticated_and_forbidden_are_distinct(api: Api, user: str) -> None:
    anonymous = await api.gql(None, "{ persons { totalCount } }")
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    forbidden = await api.data(
        user,
        """mutation { createStaff(input: {username: "x.y.z", displayName: "x",
        unit: "VW5pdDox", roles: [ADMIN]}) { errors { code } } }""",
    )
    assert forbidden["createStaff"]["errors"][0]["code"] == "FORBIDDEN"


async def test_tokens_from_a_configured_identity_provider(api: Api, tmp_path) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="idp-1", use="sig", alg="RS256")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    settings = replace(
        api.app.state.settings,
        oidc_issuer="https://idp.example.gov",
        oidc_audience="xinqiao",
        oidc_jwks_file=jwks,
    )
    app = create_app(settings)
    idp = Api(api.backend, app, app.state.engine, api.district, api.url)
    now = int(time.time())

    def token(typ: str = "at+jwt", **changes: object) -> str:
        claims = {
            "iss": "https://idp.example.gov",
            "aud": "xinqiao",
            "sub": "u-123",
            "iat": now,
            "exp": now + 300,
            "preferred_username": "social.donghu",
            **changes,
        }
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "idp-1", "typ": typ})

    ok = await idp.post(
        {"query": "{ viewer { staff { username } } }"}, {"Authorization": f"Bearer {token()}"}
    )
    assert ok.json()["data"]["viewer"]["staff"]["username"] == "social.donghu"
    id_token = token(typ="JWT")  # an ID token is not an access token
    for bad in (
        token(aud="other"),
        token(preferred_username="nobody"),
        token(exp=now - 5),
        id_token,
    ):
        r = await idp.post({"query": "{ viewer { roles } }"}, {"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401
    await app.state.engine.dispose()


def _redis_up() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.3):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/15"] if _redis_up() else [])
async def test_the_redis_rate_limiter_shares_one_budget(url: str) -> None:
    from api.ratelimit import RedisRateLimiter

    key = f"test-{time.time_ns()}"
    one, two = RedisRateLimiter(url, 3), RedisRateLimiter(url, 3)  # two server processes
    results = [
        await one.allow(key),
        await two.allow(key),
        await one.allow(key),
        await two.allow(key),
    ]
    assert results == [True, True, True, False]
    await one.redis.aclose()
    await two.redis.aclose()


async def test_anonymous_sign_in_attempts_are_rate_limited_by_address(api: Api) -> None:
    app = create_app(replace(api.app.state.settings, rate_limit_per_minute=3))
    app.state.graphql.request_limiter = RateLimiter(3, 60.0)
    anonymous = Api(api.backend, app, app.state.engine, api.district, api.url)
    codes = []
    for _ in range(4):
        body = await anonymous.gql(None, SIGN_IN, {"u": "nobody.here", "p": "x"})
        codes.append(body["errors"][0]["extensions"]["code"] if body.get("errors") else "OK")
    assert codes == ["OK", "OK", "OK", "RATE_LIMITED"]
    await app.state.engine.dispose()
