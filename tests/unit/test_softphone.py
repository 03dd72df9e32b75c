"""The browser phone's per-agent endpoints and SIP passwords (controller/plugins/desk/services.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from controller.ari.errors import AriUnavailable
from controller.config import Config, SoftphoneSettings
from controller.plugins.desk.services import (
    WebrtcEndpoints,
    endpoint_of,
    phone_for,
    render_pjsip,
    sip_password,
    supervisor_endpoint_of,
)

SETTINGS = SoftphoneSettings(enabled=True, websocket_url="wss://pbx.example.cn:8089/ws",
                             secret="a-long-enough-secret-0123")


def test_each_agent_has_its_own_password_derived_from_the_secret() -> None:
    first, second = sip_password(SETTINGS, "webrtc-1001"), sip_password(SETTINGS, "webrtc-1002")
    assert len(first) == 32 and first != second
    assert sip_password(SETTINGS, "webrtc-1001") == first  # the same every time: nothing to store
    other = SoftphoneSettings(enabled=True, websocket_url="ws://x/ws", secret="another-secret-0123456")
    assert sip_password(other, "webrtc-1001") != first  # a new secret changes them all


def test_the_page_gets_what_asterisk_is_configured_with() -> None:
    phone = phone_for(SETTINGS, endpoint_of(SETTINGS, "1001"))
    assert phone["endpoint"] == "webrtc-1001"
    assert phone["uri"] == "sip:webrtc-1001@pbx.example.cn" and phone["websocket_url"] == SETTINGS.websocket_url
    conf = render_pjsip(SETTINGS, ["1001", "1002"])
    section = conf.split("[webrtc-1001](webrtc-endpoint)")[1].split("[webrtc-1002]")[0]
    assert f"password = {phone['password']}" in section and "username = webrtc-1001" in section
    assert "webrtc = yes" in conf and "dtls_cert_file = /etc/asterisk/keys/webrtc.crt" in conf
    assert "max_contacts = 1" in section and "remove_existing = yes" in section


def test_a_supervisor_gets_an_endpoint_of_their_own_rendered_like_the_agents() -> None:
    endpoint = supervisor_endpoint_of(SETTINGS, "lead.wang")
    assert endpoint == "webrtc-sup-lead.wang"
    phone = phone_for(SETTINGS, endpoint)
    conf = render_pjsip(SETTINGS, ["1001"], ["lead.wang"])
    section = conf.split("[webrtc-sup-lead.wang](webrtc-endpoint)")[1]
    assert f"password = {phone['password']}" in section and 'callerid = "Supervisor lead.wang"' in section
    assert phone["password"] != phone_for(SETTINGS, endpoint_of(SETTINGS, "1001"))["password"]
    assert "[webrtc-1001](webrtc-endpoint)" in conf and "max_contacts = 1" in section


def test_turn_credentials_go_only_with_turn_servers() -> None:
    settings = SoftphoneSettings(enabled=True, websocket_url="wss://p/ws", secret="x" * 16,
                                 ice_servers=["stun:s:3478", "turn:t:3478"], turn_username="u", turn_password="p")
    assert phone_for(settings, "webrtc-1")["ice_servers"] == [{"urls": "stun:s:3478"},
                                                       {"urls": "turn:t:3478", "username": "u", "credential": "p"}]


@pytest.mark.parametrize(("fields", "problem"), [
    ({"websocket_url": "http://pbx/ws"}, "websocket_url"),
    ({"secret": "short"}, "secret"),
    ({"endpoint": "webrtc"}, "{agent}"),
    ({"supervisor_endpoint": "webrtc-sup"}, "{user}"),
])
def test_a_bad_setting_is_refused_with_its_name(fields: dict[str, str], problem: str) -> None:
    values = {"enabled": True, "websocket_url": "ws://127.0.0.1:8088/ws", "secret": "x" * 16, **fields}
    with pytest.raises(ValueError, match=problem.replace("{", r"\{").replace("}", r"\}")):
        SoftphoneSettings(**values)  # type: ignore[arg-type]


def test_the_demo_secret_counts_as_weak() -> None:
    demo = SoftphoneSettings(enabled=True, websocket_url="ws://h/ws", secret="demo-webrtc-secret-x")
    assert any("softphone" in p for p in Config(softphone=demo).weak_tokens())
    assert not any("softphone" in p for p in Config(softphone=SETTINGS).weak_tokens())


async def test_the_endpoints_file_follows_the_agents_and_every_node_reloads_once_per_change(tmp_path: Path) -> None:
    conf = tmp_path / "pjsip_webrtc.conf"
    settings = dataclasses.replace(SETTINGS, pjsip_conf=str(conf))
    reloads: list[str] = []
    down = {"b"}

    async def reload(node: str) -> None:
        if node in down:
            raise AriUnavailable("PUT", "/asterisk/modules/res_pjsip.so", 0, "connection refused")
        reloads.append(node)

    endpoints = WebrtcEndpoints(settings, nodes=lambda: ["a", "b"], reload=reload)
    assert await endpoints.sync(["1001"]) is True
    assert conf.read_text() == render_pjsip(settings, ["1001"]) and reloads == ["a"]
    assert await endpoints.sync(["1001"]) is False and reloads == ["a"]  # nothing changed: no reload
    assert await endpoints.sync(["1001", "1006"]) is True  # an agent added live
    assert "[webrtc-1006](webrtc-endpoint)" in conf.read_text() and reloads == ["a", "a"]
    down.clear()
    await endpoints.node_connected("a")  # not stale: not reloaded again
    await endpoints.node_connected("b")  # missed the changes while down: reloaded now, once
    await endpoints.node_connected("b")
    assert reloads == ["a", "a", "b"]
    assert await endpoints.sync(["1006"]) is True and "[webrtc-1001]" not in conf.read_text()  # removed
    assert conf.stat().st_mode & 0o077 == 0o040  # the SIP passwords: not for every local user


async def test_without_a_file_setting_nothing_is_written(tmp_path: Path) -> None:
    async def reload(node: str) -> None:
        raise AssertionError("no reload without a file")
    assert await WebrtcEndpoints(SETTINGS, nodes=lambda: ["a"], reload=reload).sync(["1001"]) is False
    assert list(tmp_path.iterdir()) == []
