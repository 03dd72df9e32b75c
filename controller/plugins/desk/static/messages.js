// Internal messages (README "Supervisor console"), shared by the agent toolbar and the supervisor console:
// the user's messages (received and sent) with the unread ones marked, a recipient list (whom this user may
// write to) and a text box. The text is the sender's plain text: always drawn through esc(), never as HTML.
"use strict";
class Messages {
  // `box`: an empty element that gets the heading, the recipient list, the text box and the list (built
  // before the page's desk.translate(), which fills in their texts).
  constructor(desk, box) {
    this.desk = desk;
    box.innerHTML = `<h2><span data-t="messages"></span> <span class="unread" aria-live="polite"></span></h2>
      <div class="row"><select class="msg-to" data-t-label="msg_to"></select>
        <input class="msg-text" size="50" maxlength="1000" data-t-label="msg_text" data-t-placeholder="msg_text">
        <button class="msg-send" data-t="send"></button></div>
      <ul class="items messages"></ul>`;
    const elements = {list: box.querySelector(".messages"), unread: box.querySelector(".unread"),
                      to: box.querySelector(".msg-to"), text: box.querySelector(".msg-text"),
                      send: box.querySelector(".msg-send")};
    this.el = elements;
    this.me = null;
    this.contacts = [];
    elements.send.onclick = () => this.send();
    elements.text.onkeydown = (e) => { if (e.key === "Enter") { e.preventDefault(); this.send(); } };
    elements.list.onclick = (click) => {
      const button = click.target.closest("button[data-action=read]");
      if (button) this.markRead(button.closest("li").dataset.message);
    };
  }
  t(key) { return this.desk.t(key); }
  async loadContacts() {
    const {contacts} = await this.desk.api("GET", "/api/messages/contacts", undefined, {quiet: true});
    this.contacts = contacts;
    const chosen = this.el.to.value;
    this.el.to.replaceChildren(...contacts.map((c) => new Option(
      `${c.name} · ${this.t("role_" + c.role) || c.role}`, c.name)));
    if (contacts.some((c) => c.name === chosen)) this.el.to.value = chosen;
  }
  // The console's "Message" button on an agent's row: that agent's user as the recipient.
  writeTo(agentId) {
    const contact = this.contacts.find((c) => c.agent_id === agentId);
    if (contact) this.el.to.value = contact.name;
    this.el.text.focus();
  }
  async load() {
    let answer;
    try { answer = await this.desk.api("GET", "/api/messages?limit=50", undefined, {quiet: true}); }
    catch (e) { return; }
    const me = (await this.whoAmI());
    this.el.unread.textContent = answer.unread ? `(${answer.unread} ${this.t("msg_unread")})` : "";
    this.el.unread.dataset.count = answer.unread;
    this.el.list.innerHTML = answer.messages.length === 0 ? `<li>${esc(this.t("msg_none"))}</li>` : answer.messages.map((m) => {
      const received = m.recipient === me, unread = received && m.read_at === null;
      const who = received ? `${esc(m.sender)} → ${esc(this.t("msg_me"))}` : `${esc(this.t("msg_me"))} → ${esc(m.recipient)}`;
      const state = unread ? `<button data-action="read">${esc(this.t("msg_mark_read"))}</button>`
        : !received && m.read_at !== null ? `<span class="receipt">✓ ${esc(this.t("msg_read"))}</span>` : "";
      return `<li data-message="${esc(m.id)}" class="message${unread ? " unread" : ""}${received ? " in" : " out"}">
        <small>${esc(new Date(m.sent_at * 1000).toLocaleString())}</small> <b>${who}</b>
        <span class="text">${esc(m.text)}</span> ${state}</li>`; }).join("");
  }
  async whoAmI() {
    if (this.me === null) this.me = (await this.desk.api("GET", "/api/auth/me", undefined, {quiet: true})).name;
    return this.me;
  }
  async send() {
    const text = this.el.text.value.trim();
    if (!text || !this.el.to.value) return;
    try { await this.desk.api("POST", "/api/messages", {to: this.el.to.value, text}); } catch (e) { return; }
    this.el.text.value = "";
    await this.load();
  }
  async markRead(id) {
    try { await this.desk.api("POST", `/api/messages/${encodeURIComponent(id)}/read`); } catch (e) { return; }
    await this.load();
  }
}
Messages.texts = {
  zh: {messages: "内部消息", msg_to: "收件人", msg_text: "消息内容", send: "发送", msg_mark_read: "标为已读",
       msg_unread: "条未读", msg_read: "对方已读", msg_me: "我", msg_none: "没有消息", role_agent: "坐席",
       role_supervisor: "班长", role_admin: "管理员"},
  en: {messages: "Messages", msg_to: "to", msg_text: "message", send: "Send", msg_mark_read: "Mark read",
       msg_unread: "unread", msg_read: "read", msg_me: "me", msg_none: "no messages", role_agent: "agent",
       role_supervisor: "supervisor", role_admin: "admin"},
};
