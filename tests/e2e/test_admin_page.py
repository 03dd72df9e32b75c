"""The admin page (/admin) in headless Chromium: supervisors and admins manage the live configuration,
users and tokens; what the page does is checked through the API (README "Admin page")."""

from __future__ import annotations

import pytest

from tests.browser import Browser, Page
from tests.e2e.conftest import ControllerProcess
from tests.e2e.test_desk import SCREENSHOTS, assert_chinese_is_drawn
from tests.e2e.test_ivr_acd import login

pytestmark = pytest.mark.e2e
PASSWORDS = {"admin": "demo-admin-pass", "supervisor": "demo-supervisor-pass", "1001": "demo-1001-pass"}


async def sign_in(browser: Browser, controller: ControllerProcess, name: str, tab: str = "agents",
                  lang: str = "en", path: str = "/admin") -> Page:
    """Open the admin page (or another page with the same sign-in: /qa), log in with a name and password; returns
    once every panel is drawn."""
    page = await browser.open(f"{controller.url}{path}?lang={lang}#{tab}")
    await page.send("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
    await page.wait_for("!document.querySelector('#signin').hidden")
    await page.fill("#name", name)
    await page.fill("#password", PASSWORDS[name])
    await page.click("#login")
    await page.wait_for("document.body.dataset.ready === 'true'")
    assert await page.text("#error") == ""
    return page


async def rows(page: Page, table: str) -> list[str]:
    """The keys of a table's rows (data-key), as drawn."""
    return list(await page.evaluate(
        f"[...document.querySelectorAll('#{table} tbody tr')].map((r) => r.dataset.key)"))


def has_row(table: str, key: str) -> str:
    """JavaScript: whether a table has a row for this key (data-key)."""
    return f"[...document.querySelectorAll('#{table} tbody tr')].some((r) => r.dataset.key === {key!r})"


def not_has_row(table: str, key: str) -> str:
    return f"!{has_row(table, key)}"


async def column(page: Page, table: str, name: str) -> list[str]:
    """The text of one column (its cells' class) of a table, top to bottom."""
    return list(await page.evaluate(
        f"[...document.querySelectorAll('#{table} tbody td.{name}')].map((td) => td.textContent)"))


async def test_an_admin_creates_a_token_sees_its_value_once_and_revokes_it(controller: ControllerProcess) -> None:
    async with Browser() as browser:
        page = await sign_in(browser, controller, "admin", tab="tokens")
        assert await page.visible("#tokens-form") and not await page.visible("#token-value")
        await page.fill("#tokens-form [name=name]", "crm-2")
        await page.evaluate("document.querySelector('#tokens-form [name=role]').value = 'integration'; true")
        await page.click("#tokens-form [type=submit]")
        value = str(await page.wait_for("document.querySelector('#token-secret').textContent"))
        assert await page.visible("#token-value") and len(value) >= 24
        token_id = await page.wait_for(
            "[...document.querySelectorAll('#tokens-table tbody tr')].find((r) =>"
            " r.querySelector('.name').textContent === 'crm-2')?.dataset.key")
        status, who = await controller.api("GET", "/api/auth/me", token=value)
        assert status == 200 and who["name"] == "crm-2" and who["role"] == "integration"
        await page.screenshot(SCREENSHOTS / "admin-token-created-en.png")

        # Shown once: gone when put away, and nowhere on the page after a reload.
        await page.click("#token-hide")
        assert not await page.visible("#token-value") and value not in await page.text("body")
        await page.reload()
        await page.wait_for("document.body.dataset.ready === 'true'")
        assert token_id in await rows(page, "tokens-table") and value not in await page.evaluate(
            "document.documentElement.outerHTML")

        # Revoked on the page (after confirming there): the token's next request fails.
        await page.click(f"#tokens-table tr[data-key='{token_id}'] .revoke")
        assert await page.visible("#tokens-confirm")
        assert (await controller.api("GET", "/api/auth/me", token=value))[0] == 200  # nothing before the yes
        await page.click("#tokens-confirm .yes")
        await page.wait_for(f"document.querySelector(\"#tokens-table tr[data-key='{token_id}'] .revoked\")"
                            ".textContent !== ''")
        assert (await controller.api("GET", "/api/auth/me", token=value))[0] == 401
        assert await page.text("#tokens-confirm .refusal") == ""

        # The audit log on the page, filtered by actor and action: these two changes, by this user.
        await page.click("#tabs button[data-tab=audit]")
        await page.wait_for("document.querySelectorAll('#audit-table tbody tr').length > 0")
        everything = await column(page, "audit-table", "action")
        assert "login" in everything and "token.create" in everything, everything
        await page.fill("#audit-form [name=actor]", "user:admin")
        await page.fill("#audit-form [name=action]", "token.")
        await page.click("#audit-form [type=submit]")
        await page.wait_for("[...document.querySelectorAll('#audit-table td.action')].every((td) =>"
                            " td.textContent.startsWith('token.'))")
        assert await column(page, "audit-table", "action") == ["token.revoke", "token.create"]
        assert set(await column(page, "audit-table", "actor")) == {"user:admin"}
        assert await column(page, "audit-table", "target") == [f"token:{token_id}"] * 2


async def test_an_admin_manages_users_and_everyone_changes_their_own_password(controller: ControllerProcess) -> None:
    async with Browser() as browser:
        page = await sign_in(browser, controller, "admin", tab="users")
        await page.fill("#users-form [name=name]", "lead2")
        await page.evaluate("document.querySelector('#users-form [name=role]').value = 'supervisor'; true")
        await page.fill("#users-form [name=password]", "short")  # refused: too short; nothing is created
        await page.click("#users-form [type=submit]")
        problem = await page.wait_for("document.querySelector('#users-form .problems').textContent")
        assert "password" in problem, problem
        assert "lead2" not in await rows(page, "users-table")
        assert (await controller.api("POST", "/api/auth/login",
                                     json={"name": "lead2", "password": "short"}))[0] == 401
        await page.fill("#users-form [name=password]", "a-long-enough-password")
        await page.click("#users-form [type=submit]")
        await page.wait_for(has_row("users-table", "lead2"))
        assert await page.text("#users-form .problems") == ""
        status, _ = await controller.api("POST", "/api/auth/login",
                                         json={"name": "lead2", "password": "a-long-enough-password"})
        assert status == 200

        await page.click("#users-table tr[data-key='lead2'] .reset")
        await page.fill("#reset-form [name=password]", "another-long-password")
        await page.click("#reset-form [type=submit]")
        await page.wait_for("document.querySelector('#reset-form').hidden")
        assert (await controller.api("POST", "/api/auth/login",
                                     json={"name": "lead2", "password": "another-long-password"}))[0] == 200

        await page.click("#users-table tr[data-key='lead2'] .remove")
        await page.click("#users-confirm .yes")
        await page.wait_for(not_has_row("users-table", "lead2"))
        assert (await controller.api("POST", "/api/auth/login",
                                     json={"name": "lead2", "password": "another-long-password"}))[0] == 401

        # A supervisor sees the users but cannot change them (nor tokens, DIDs, webhooks: no tab), and
        # changes their own password (the current one is asked for).
        await page.click("#signout")  # the browser's session ends: the sign-in form again
        await page.wait_for("document.readyState === 'complete' && !document.querySelector('#signin').hidden")
        assert not await page.visible("#panels")
        lead = await sign_in(browser, controller, "supervisor", tab="users")
        assert "admin" in await rows(lead, "users-table")
        assert not await lead.visible("#users-form") and not await lead.visible(".reset")
        tabs = await lead.evaluate("[...document.querySelectorAll('#tabs button')].map((b) => b.dataset.tab)")
        assert "agents" in tabs and "audit" in tabs
        assert not {"tokens", "dids", "webhooks"} & set(tabs), tabs
        await lead.fill("#own-password-form [name=current_password]", "wrong")
        await lead.fill("#own-password-form [name=password]", "supervisor-new-pass")
        await lead.click("#own-password-form [type=submit]")
        assert await lead.wait_for("document.querySelector('#own-password-form .problems').textContent")
        await lead.fill("#own-password-form [name=current_password]", PASSWORDS["supervisor"])
        await lead.fill("#own-password-form [name=password]", "supervisor-new-pass")
        await lead.click("#own-password-form [type=submit]")
        await lead.wait_for("document.querySelector('#own-password-form .done').textContent === '✓'")
        assert (await controller.api("POST", "/api/auth/login",
                                     json={"name": "supervisor", "password": "supervisor-new-pass"}))[0] == 200

        # The session ends elsewhere (an admin resets the password): the page's next request brings the
        # sign-in back, with why, instead of a page of failing buttons.
        status, _ = await controller.api("POST", "/api/users/supervisor/password", json={"password": "reset-by-admin"})
        assert status == 200
        await lead.click("#tabs button[data-tab=audit]")
        await lead.wait_for("!document.querySelector('#signin').hidden")
        assert not await lead.visible("#panels") and "log in again" in await lead.text("#error")



async def test_an_agent_opening_the_admin_page_is_sent_to_the_toolbar(controller: ControllerProcess) -> None:
    async with Browser() as browser:
        page = await browser.open(f"{controller.url}/admin?lang=zh")
        await page.wait_for("!document.querySelector('#signin').hidden")
        assert await page.text("#login") == "登录" and not await page.visible("#panels")
        await assert_chinese_is_drawn(page, "#signin", "admin-signin-zh")
        await page.fill("#name", "1001")
        await page.fill("#password", PASSWORDS["1001"])
        await page.click("#login")
        # The agent's own page, with their name filled in; their session signs them in there without a password.
        await page.wait_for("location.pathname === '/desk/toolbar.html' && document.readyState === 'complete'"
                            " && document.querySelector('#agent').value === '1001'")
        await page.click("#login")
        await page.wait_for("document.querySelector('#state').dataset.state === 'ready'")
        assert await page.text("#error") == ""
        # Opened again with the agent's session: straight back to the toolbar, never a half-drawn admin page.
        again = await browser.open(f"{controller.url}/admin?lang=zh")
        await again.wait_for("location.pathname === '/desk/toolbar.html'")


async def fill_agent(page: Page, fields: dict[str, str]) -> None:
    for name, value in fields.items():
        await page.fill(f"#agents-form [name={name}]", value)


NEW_AGENT = {"id": "1006", "name": "赵磊", "number": "2006", "endpoint": "8006", "skills": "general=11",
             "queues": "general=0, orders=2"}


async def test_a_supervisor_adds_an_agent_on_the_admin_page(controller: ControllerProcess) -> None:
    async with Browser() as browser:
        page = await sign_in(browser, controller, "supervisor", lang="zh")
        await page.wait_for("document.querySelectorAll('#agents-table tbody tr').length === 5")
        assert await rows(page, "agents-table") == ["1001", "1002", "1003", "1004", "1005"]
        assert await page.text("#agents-table tr[data-key='1001'] .f-name") == "王芳"
        assert await page.text("#agents-table tr[data-key='1001'] .state") == "未登录"
        await assert_chinese_is_drawn(page, "#panel-agents", "admin-agents-zh")
        # The agents' live state follows their events.
        await login(controller, "1001")
        await page.wait_for("document.querySelector(\"#agents-table tr[data-key='1001'] .state\").dataset.state"
                            " === 'ready'")
        assert await page.text("#agents-table tr[data-key='1001'] .state") == "示闲"
        assert await page.text("#agents-table tr[data-key='1002'] .state") == "未登录"

        # A skill level out of range: the API's message next to the form, and nothing is created.
        await fill_agent(page, NEW_AGENT)
        await page.click("#agents-form [type=submit]")
        problems = str(await page.wait_for("document.querySelector('#agents-form .problems').textContent"))
        assert "agents[1006]: skills.general: expected a level from 1 to 10, got 11" in problems, problems
        assert (await controller.api("GET", "/api/config/agents/1006"))[0] == 404
        assert "1006" not in await rows(page, "agents-table")
        await page.screenshot(SCREENSHOTS / "admin-agent-refused-zh.png")

        # Corrected and saved: the API has it as typed, the list shows it, the form is empty for the next one.
        await page.fill("#agents-form [name=skills]", "general=5, complaints=3")
        await page.click("#agents-form [type=submit]")
        await page.wait_for(has_row("agents-table", "1006"))
        assert await page.text("#agents-form .problems") == ""
        assert await page.evaluate("document.querySelector('#agents-form [name=id]').value") == ""
        status, agent = await controller.api("GET", "/api/config/agents/1006")
        assert status == 200, agent
        assert agent["value"] == {"id": "1006", "name": "赵磊", "number": "2006", "endpoint": "8006",
                                  "skills": {"general": 5, "complaints": 3}, "queues": {"general": 0, "orders": 2},
                                  "caller_id": "", "enabled": True}
        assert await page.text("#agents-table tr[data-key='1006'] .f-skills") == "general=5, complaints=3"
        await page.screenshot(SCREENSHOTS / "admin-agent-added-zh.png")

        # Edited: the key stays, the name changes; disabled and enabled again; removed after confirming.
        await page.click("#agents-table tr[data-key='1006'] .edit")
        assert await page.evaluate("document.querySelector('#agents-form [name=id]').readOnly")
        await page.fill("#agents-form [name=name]", "赵磊磊")
        await page.click("#agents-form [type=submit]")
        await page.wait_for("document.querySelector(\"#agents-table tr[data-key='1006'] .f-name\")"
                            "?.textContent === '赵磊磊'")
        await page.click("#agents-table tr[data-key='1006'] .toggle")
        await page.wait_for("document.querySelector(\"#agents-table tr[data-key='1006']\")"
                            "?.classList.contains('disabled')")
        assert (await controller.api("GET", "/api/config/agents/1006"))[1]["value"]["enabled"] is False
        await page.click("#agents-table tr[data-key='1006'] .remove")
        assert await page.visible("#agents-confirm")
        assert (await controller.api("GET", "/api/config/agents/1006"))[0] == 200  # nothing before the yes
        await page.click("#agents-confirm .yes")
        await page.wait_for(not_has_row("agents-table", "1006"))
        assert (await controller.api("GET", "/api/config/agents/1006"))[0] == 404

        # A change made elsewhere (the API, ccctl) shows on the open page at once (CTI config.changed).
        status, body = await controller.api("PUT", "/api/config/queues/billing",
                                            json={"title": "账务", "wrapup_seconds": 20})
        assert status == 200, body
        await page.click("#tabs button[data-tab=queues]")
        await page.wait_for(has_row("queues-table", "billing"))
        assert await page.text("#queues-table tr[data-key='billing'] .f-wrapup_seconds") == "20"

        # The other language, from the link in the header: the same session, the same tab, English text.
        await page.click("#lang")
        await page.wait_for("document.documentElement?.lang === 'en' && document.body?.dataset.ready === 'true'")
        assert await page.text("h1") == "Administration" and await page.text("#tabs button.current") == "Queues"
        assert await page.text("#queues-table thead th") == "Name"
        await page.screenshot(SCREENSHOTS / "admin-queues-after-api-change-en.png")

    _, audit = await controller.api("GET", "/api/audit", params={"actor": "user:supervisor", "action": "config."})
    actions = [(e["action"], e["target"]) for e in audit["entries"]]
    assert ("config.put", "agent:1006") in actions and ("config.delete", "agent:1006") in actions, actions


async def save_item(page: Page, kind: str, fields: dict[str, str]) -> str:
    """Fill a kind's form and save: the problems shown under it ('' when it went through)."""
    await page.click(f"#tabs button[data-tab={kind}]")
    for name, value in fields.items():
        await page.fill(f"#{kind}-form [name={name}]", value)
    await page.evaluate(f"document.querySelector('#{kind}-form .done').textContent = ''; true")
    await page.click(f"#{kind}-form [type=submit]")
    form = f"document.querySelector('#{kind}-form')"
    answer = await page.wait_for(f"({form}.querySelector('.done').textContent"
                                 f" || {form}.querySelector('.problems').textContent)"
                                 f" && [{form}.querySelector('.problems').textContent]")
    return str(answer[0])


async def item(controller: ControllerProcess, kind: str, key: str) -> object:
    status, body = await controller.api("GET", f"/api/config/{kind}/{key}")
    return body["value"] if status == 200 else status


async def test_an_admin_changes_queues_reasons_prompts_dids_and_webhooks(controller: ControllerProcess) -> None:
    async with Browser() as browser:
        page = await sign_in(browser, controller, "admin", tab="queues", lang="en")
        await page.wait_for(has_row("queues-table", "general"))

        # A queue's wrap-up, changed in its form (the other fields as they were); a bad number changes nothing.
        await page.click("#queues-table tr[data-key='orders'] .edit")
        assert await page.evaluate("document.querySelector('#queues-form [name=overflow]').value") == "voicemail"
        problems = await save_item(page, "queues", {"wrapup_seconds": "half a minute"})
        assert "queues[orders].wrapup_seconds: expected a number, got 'half a minute'" in problems, problems
        assert (await item(controller, "queues", "orders"))["wrapup_seconds"] == 30  # type: ignore[index]
        assert await save_item(page, "queues", {"wrapup_seconds": "45", "service_level_seconds": "15"}) == ""
        orders = await item(controller, "queues", "orders")
        assert orders["wrapup_seconds"] == 45 and orders["service_level_seconds"] == 15  # type: ignore[index]
        assert orders["overflow"] == "voicemail" and orders["title"] == "业务受理"  # type: ignore[index]
        await page.wait_for("document.querySelector(\"#queues-table tr[data-key='orders'] .f-wrapup_seconds\")"
                            ".textContent === '45'")
        await page.screenshot(SCREENSHOTS / "admin-queues-en.png")

        # Removing a queue the API refuses: its reason shows where it was asked, and the queue stays.
        await page.click("#queues-table tr[data-key='general'] .remove")
        await page.click("#queues-confirm .yes")
        refusal = str(await page.wait_for("document.querySelector('#queues-confirm .refusal').textContent"))
        assert "agents[1001].queues.general: no queue 'general'" in refusal, refusal
        assert isinstance(await item(controller, "queues", "general"), dict)
        assert await page.visible("#queues-confirm") and "general" in await rows(page, "queues-table")

        assert await save_item(page, "not_ready_reasons", {"reason": "coaching"}) == ""
        await page.wait_for(has_row("not_ready_reasons-table", "coaching"))
        assert await item(controller, "not_ready_reasons", "coaching") == "coaching"
        hours = "营业时间为每天八点到二十点。"
        assert await save_item(page, "standard_prompts", {"name": "hours", "text": hours}) == ""
        await page.wait_for(has_row("standard_prompts-table", "hours"))
        assert await item(controller, "standard_prompts", "hours") == hours
        assert await save_item(page, "dids", {"did": "4008009999", "flow": "hotline"}) == ""
        await page.wait_for(has_row("dids-table", "4008009999"))
        assert await item(controller, "dids", "4008009999") == "hotline"

        hook = {"name": "crm", "url": "http://127.0.0.1:9/hook", "secret": "s3cret-value", "types": "call.*, agent.*"}
        assert await save_item(page, "webhooks", hook) == ""
        await page.wait_for(has_row("webhooks-table", "crm"))
        stored = await item(controller, "webhooks", "crm")
        assert stored["types"] == ["call.*", "agent.*"] and stored["secret"] == "***"  # type: ignore[index]
        # Edited without retyping the secret: the form shows "***", which keeps it.
        await page.click("#webhooks-table tr[data-key='crm'] .edit")
        assert await page.evaluate("document.querySelector('#webhooks-form [name=secret]').value") == "***"
        assert await save_item(page, "webhooks", {"timeout": "3"}) == ""
        assert (await item(controller, "webhooks", "crm"))["timeout"] == 3  # type: ignore[index]

        await page.click("#not_ready_reasons-table tr[data-key='coaching'] .remove")
        await page.click("#not_ready_reasons-confirm .yes")
        await page.wait_for(not_has_row("not_ready_reasons-table", "coaching"))
        assert await item(controller, "not_ready_reasons", "coaching") == 404

        # The service standards (one object): a target above 1 is refused with the file's message.
        await page.click("#tabs button[data-tab=standards]")
        await page.wait_for("document.querySelector('#standards-form [name=max_talk_seconds]').value === '180'")
        problems = await save_item(page, "standards", {"service_level_target": "1.5"})
        assert "service_level_target: expected a fraction from 0 to 1" in problems, problems
        assert (await controller.api("GET", "/api/config/standards"))[1]["service_level_target"] == 0.8
        assert await save_item(page, "standards", {"service_level_target": "0.9"}) == ""
        standards = (await controller.api("GET", "/api/config/standards"))[1]
        assert standards["service_level_target"] == 0.9 and standards["max_talk_seconds"] == 180
        assert await save_item(page, "acd_settings", {"center_name": "客服中心"}) == ""
        assert (await controller.api("GET", "/api/config/acd_settings"))[1]["center_name"] == "客服中心"

    # What the page hides from supervisors, the API refuses them too.
    for path in ("/api/config/dids/4008009999", "/api/config/webhooks/crm"):
        assert (await controller.api("DELETE", path, token="demo-supervisor-token"))[0] == 403
