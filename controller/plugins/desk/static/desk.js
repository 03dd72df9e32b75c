// Shared by the agent toolbar and the wallboard: the session (name and password) or a token, API calls,
// the live event stream, zh/en text. A session is an HttpOnly cookie the page never sees; its CSRF token
// is kept for the tab and sent as X-CSRF-Token with every request that changes something.
"use strict";
// Text from the API or a user into HTML: always through this (pages never insert such text as markup).
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
// Texts every page using Desk needs, whatever its own (a page's texts of the same key win).
const DESK_TEXTS = {
  zh: {unreachable: "无法连接控制器：请检查网络，稍后再试"},
  en: {unreachable: "cannot reach the controller: check the network and try again"},
};
class Desk {
  constructor() {
    this.query = new URLSearchParams(location.search);
    this.lang = this.query.get("lang") || localStorage.getItem("ccc.lang") || "zh";
    this.token = this.query.get("token") || sessionStorage.getItem("ccc.token") || "";
    this.csrf = sessionStorage.getItem("ccc.csrf") || "";
    if (this.query.has("token")) {  // keep it for this tab only, and out of the address bar and history
      sessionStorage.setItem("ccc.token", this.token);
      this.query.delete("token");
      const rest = this.query.toString();
      history.replaceState(null, "", location.pathname + (rest ? `?${rest}` : ""));
    }
    this.texts = {};
    this.reachable = true;  // false after a request that got no answer at all (`reach`)
    const lang = document.getElementById("lang");
    if (lang) {
      lang.textContent = this.lang === "zh" ? "English" : "中文";
      lang.onclick = (e) => { e.preventDefault(); localStorage.setItem("ccc.lang", this.lang === "zh" ? "en" : "zh");
                              const q = new URLSearchParams(location.search); q.delete("lang");
                              location.search = q.toString(); };
    }
  }
  param(name) { return this.query.get(name); }
  setToken(token) { this.token = token; sessionStorage.setItem("ccc.token", token); }
  // Log in with a name and password: the controller sets the session cookie; answers the user or null.
  // A controller out of reach (stopped, the network down) is said under the form, not left to a silent button.
  async signIn(name, password) {
    const response = await this.reach("/api/auth/login", {method: "POST", headers: {"Content-Type": "application/json"},
                                                           body: JSON.stringify({name, password})});
    if (response === null) { this.error(this.t("unreachable")); return null; }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) { this.error(data.error || `HTTP ${response.status}`); return null; }
    this.error("");
    this.token = ""; sessionStorage.removeItem("ccc.token");
    this.csrf = data.csrf_token; sessionStorage.setItem("ccc.csrf", this.csrf);
    return data.user;
  }
  // The session this tab still has (a reload), or null: no error shown, unless no answer came at all.
  async session() {
    const response = await this.reach("/api/auth/me");
    if (response === null) { this.error(this.t("unreachable")); return null; }
    if (!response.ok) return null;
    const me = await response.json();
    if (me.kind !== "session") return null;
    this.csrf = me.csrf_token; sessionStorage.setItem("ccc.csrf", this.csrf);
    return me;
  }
  t(key) { return (this.texts[this.lang] || {})[key] || (DESK_TEXTS[this.lang] || DESK_TEXTS.en)[key] || ""; }
  translate(texts) {
    this.texts = texts;
    document.documentElement.lang = this.lang;
    for (const el of document.querySelectorAll("[data-t]")) el.textContent = this.t(el.dataset.t);
    document.title = this.t("title");
  }
  // fetch() with the session cookie, keeping `reachable`: the response, or null when no answer came at all
  // (the controller stopped, the network down: fetch throws), which the caller says under the page.
  async reach(path, options = {}) {
    try {
      const response = await fetch(path, {credentials: "same-origin", ...options});
      this.reachable = true;
      return response;
    } catch {
      this.reachable = false;
      return null;
    }
  }
  error(message) { const el = document.getElementById("error"); if (el) el.textContent = message || ""; }
  // A refusal is shown under the page (unless `quiet`: the caller shows it, e.g. next to a form) and thrown
  // as an Error carrying the HTTP status and the answer (its `problems`, for a 422).
  async api(method, path, body, {quiet = false} = {}) {
    const headers = {"Content-Type": "application/json"};
    if (this.token) headers["Authorization"] = `Bearer ${this.token}`;
    else headers["X-CSRF-Token"] = this.csrf;
    const response = await this.reach(path, {method, headers,
                                              body: body === undefined ? undefined : JSON.stringify(body)});
    if (response === null) {  // no answer at all: status 0
      if (!quiet) this.error(this.t("unreachable"));
      throw Object.assign(new Error(this.t("unreachable")), {status: 0, data: {}});
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      if (!quiet) this.error(data.error || `HTTP ${response.status}`);
      throw Object.assign(new Error(data.error || `HTTP ${response.status}`), {status: response.status, data});
    }
    if (!quiet) this.error("");
    return data;
  }
  // The live events; reconnects and resumes from the last sequence number it saw.
  listen(onEvent, filters = {}) {
    let last = null;
    const badge = document.getElementById("conn");
    const open = () => {
      const q = new URLSearchParams(this.token ? {token: this.token, ...filters} : filters);  // else: the cookie
      if (last !== null) q.set("since", last);
      const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws?${q}`);
      ws.onopen = () => { if (badge) { badge.className = "badge on"; badge.textContent = "●"; } };
      ws.onmessage = (message) => {
        const event = JSON.parse(message.data);
        if (event.type === "hello") { if (last === null) last = event.seq; return; }
        last = event.seq;
        onEvent(event);
      };
      ws.onclose = () => { if (badge) { badge.className = "badge off"; badge.textContent = "○"; }
                           setTimeout(open, 1000); };
    };
    open();
  }
}
