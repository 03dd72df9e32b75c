// The admin page (/admin): supervisors and admins manage the live configuration (README "Admin page").
// Sessions only (name and password, cookie + X-CSRF-Token): the API decides what each role may do; the
// page only hides what the role may not use. Every check of an item is the API's (the same as the
// configuration file's): its 422 `problems` show next to the form, and nothing changes.
"use strict";
const desk = new Desk();
desk.token = "";  // a token pasted into another page of this tab is not used here: the user logs in
const $ = (selector, root = document) => root.querySelector(selector);

// The managed kinds, with their fields as controller.yaml spells them (shape: as GET /api/config/{kind} lists
// them, see recordOf). Field types: text (the default),
// number, bool, select, pairs ("general=5, orders=3": a name -> integer map), list (comma-separated), secret.
// An empty text or number field is left out of the item, so the configuration's default applies.
const KINDS = [
  {kind: "agents", key: "id", live: true, fields: [
    {name: "id"}, {name: "name"}, {name: "number"}, {name: "endpoint"}, {name: "skills", type: "pairs"},
    {name: "queues", type: "pairs", example: "general=0, orders=1"}, {name: "caller_id"}, {name: "enabled", type: "bool", initial: true}],
   columns: ["id", "name", "number", "endpoint", "skills", "queues"]},
  {kind: "queues", key: "name", fields: [
    {name: "name"}, {name: "title"},
    {name: "strategy", type: "select", options: ["longest_idle", "fewest_calls", "round_robin", "skills", "ring_all"]},
    {name: "skills", type: "pairs"}, {name: "wrapup_seconds", type: "number"}, {name: "ring_timeout", type: "number"},
    {name: "max_wait", type: "number"}, {name: "overflow"}, {name: "no_agents", type: "select", options: ["overflow", "wait"]},
    {name: "announce_interval", type: "number"}, {name: "announce_wait_time", type: "bool", initial: true},
    {name: "announce_agent_number", type: "bool", initial: true}, {name: "moh_class", example: "default"},
    {name: "recording", type: "select", options: ["on_demand", "always", "never"]},
    {name: "service_level_seconds", type: "number"}, {name: "priority_aging_seconds", type: "number"},
    {name: "category", type: "select", options: ["", "inquiry", "billing", "order", "complaint", "suggestion", "sales"]},
    {name: "callback_offer_after", type: "number"},
    {name: "callback_order", type: "select", options: ["agent_first", "customer_first"]},
    {name: "callback_retries", type: "number"}, {name: "callback_retry_seconds", type: "number"},
    {name: "callback_caller_id"}, {name: "business_hours", example: "09:00-18:00"}],
   columns: ["name", "title", "strategy", "wrapup_seconds", "ring_timeout", "max_wait", "overflow", "recording",
             "service_level_seconds"]},
  {kind: "not_ready_reasons", key: "reason", shape: "values", fields: [{name: "reason"}], columns: ["reason"]},
  {kind: "standard_prompts", key: "name", shape: "mapping", fields: [{name: "name"}, {name: "text", size: 50}], columns: ["name", "text"]},
  {kind: "dids", key: "did", shape: "mapping", admin: true, fields: [{name: "did"}, {name: "flow"}], columns: ["did", "flow"]},
  {kind: "webhooks", key: "name", admin: true, fields: [
    {name: "name"}, {name: "url", size: 40}, {name: "secret", type: "secret"}, {name: "types", type: "list"},
    {name: "queue"}, {name: "timeout", type: "number"}, {name: "max_attempts", type: "number"}],
   columns: ["name", "url", "types", "queue"]},
  // One object each, always edited (no table): PUT /api/config/{kind}.
  {kind: "standards", shape: "single", fields: [
    {name: "service_level_seconds", type: "number"}, {name: "service_level_target", type: "number"},
    {name: "short_abandon_seconds", type: "number"}, {name: "max_talk_seconds", type: "number"},
    {name: "max_acw_seconds", type: "number"}, {name: "max_hold_seconds", type: "number"},
    {name: "max_wait_seconds", type: "number"}]},
  {kind: "acd_settings", shape: "single", admin: true, fields: [
    {name: "center_name"}, {name: "outbound_caller_id"}, {name: "outbound_wrapup_seconds", type: "number"},
    {name: "outbound_agent_ring_seconds", type: "number"}, {name: "outbound_customer_ring_seconds", type: "number"}]},
];
const BY_KIND = Object.fromEntries(KINDS.map((k) => [k.kind, k]));
const TABS = [...KINDS.map((k) => k.kind), "users", "tokens", "audit"];
const ADMIN_ONLY = new Set([...KINDS.filter((k) => k.admin).map((k) => k.kind), "tokens"]);
const STATES = {zh: {logged_out: "未登录", ready: "示闲", not_ready: "示忙", ringing: "振铃", talking: "通话",
                     on_hold: "保持", acw: "话后处理"}, en: {}};

let me = null;  // the signed-in user: {name, role, agent_id}
const items = {};  // kind -> the items as the API last listed them
let liveAgents = {};  // agent id -> its live state (GET /api/agents)

// The API; a session that ended (logged out elsewhere, expired, the user deleted) brings the sign-in back.
async function api(method, path, body, options) {
  try { return await desk.api(method, path, body, options); } catch (error) {
    if (error.status === 401 && me !== null) signedOut();
    throw error;
  }
}

const isAdmin = () => me !== null && me.role === "admin";
const pairsText = (map) => Object.entries(map || {}).map(([k, v]) => `${k}=${v}`).join(", ");
const cell = (value) => (Array.isArray(value) ? value.join(", ")
  : value !== null && typeof value === "object" ? pairsText(value) : value ?? "");

// ---- the managed kinds: a table, a form, a confirmation for removals ----

function fieldInput(field) {
  const label = `<span data-t="f_${field.name}"></span>`;
  if (field.type === "bool") return `<label>${label} <input type="checkbox" name="${field.name}"></label>`;
  if (field.type === "select") {
    const options = field.options.map((o) => `<option value="${o}">${o || "-"}</option>`).join("");
    return `<label>${label} <select name="${field.name}">${options}</select></label>`;
  }
  const size = field.size || (field.type === "number" ? 6 : field.type === "pairs" ? 28 : 12);
  const kind = field.type === "secret" ? "password" : "text";
  const example = field.example || {pairs: "general=5, orders=3", list: "call.*, agent.*"}[field.type];
  const hint = example ? ` placeholder="${example}"` : "";
  const mode = field.type === "number" ? ' inputmode="decimal"' : "";
  return `<label>${label} <input type="${kind}" name="${field.name}" size="${size}"${mode}${hint} autocomplete="off"></label>`;
}

function buildPanel(spec) {
  const panel = $(`#panel-${spec.kind}`);
  if (spec.shape === "single") {
    panel.innerHTML = `<h2 data-t="tab_${spec.kind}"></h2>
      <form id="${spec.kind}-form" class="item-form" autocomplete="off">
        <div class="fields">${spec.fields.map(fieldInput).join("")}</div>
        <div class="row"><button type="submit" data-t="save"></button> <span class="done"></span></div>
        <ul class="problems error"></ul>
      </form>`;
    $(`#${spec.kind}-form`).onsubmit = (e) => { e.preventDefault(); save(spec); };
    return;
  }
  const head = [...spec.columns.map((c) => `<th data-t="f_${c}"></th>`),
                ...(spec.live ? ['<th data-t="state"></th>'] : []), "<th></th>"].join("");
  panel.innerHTML = `<h2 data-t="tab_${spec.kind}"></h2>
    <table id="${spec.kind}-table"><thead><tr>${head}</tr></thead><tbody></tbody></table>
    <div id="${spec.kind}-confirm" class="confirm" hidden></div>
    <form id="${spec.kind}-form" class="item-form" autocomplete="off">
      <h3><span class="mode" data-t="new_item"></span> <b class="target"></b></h3>
      <div class="fields">${spec.fields.map(fieldInput).join("")}</div>
      <div class="row"><button type="submit" data-t="save"></button>
        <button type="button" class="cancel" data-t="new_item"></button> <span class="done"></span>
        <small class="hint" data-t="empty_default"></small></div>
      <ul class="problems error"></ul>
    </form>`;
  const form = $(`#${spec.kind}-form`);
  form.onsubmit = (e) => { e.preventDefault(); save(spec); };
  $(".cancel", form).onclick = () => edit(spec, null);
  edit(spec, null);
}

// Fill the form with an item to change (its key fixed), or empty for a new one.
function edit(spec, item) {
  const form = $(`#${spec.kind}-form`);
  if (spec.shape !== "single") {
    form.dataset.editing = item ? item[spec.key] : "";
    $(".mode", form).dataset.t = item ? "edit_item" : "new_item";
    $(".mode", form).textContent = desk.t($(".mode", form).dataset.t);
    $(".target", form).textContent = item ? item[spec.key] : "";
    form.elements[spec.key].readOnly = item !== null;
  }
  for (const field of spec.fields) {
    const input = form.elements[field.name];
    const value = item ? item[field.name] : undefined;
    if (field.type === "bool") input.checked = value === undefined ? field.initial === true : value === true;
    else if (field.type === "select") input.value = value ?? field.options[0];
    else if (field.type === "pairs") input.value = pairsText(value);
    else if (field.type === "list") input.value = (value || []).join(", ");
    else if (field.type === "secret") input.value = item ? "***" : "";  // "***": keep the current secret
    else input.value = value ?? "";
  }
  showProblems(form, []);
  $(".done", form).textContent = "";
}

// "general=5, orders=3" -> {general: 5, orders: 3}; a level that is not a whole number goes to the API as
// typed, so its message names it (as the configuration file's would).
function parsePairs(text, field, problems) {
  const map = {};
  for (const part of text.split(/[,，;\s]+/).filter(Boolean)) {
    const match = part.match(/^([^=:]+)[=:](.*)$/);
    if (!match) { problems.push(`${field}: ${desk.t("pairs_hint")} (${part})`); continue; }
    const value = match[2].trim();
    map[match[1].trim()] = /^-?\d+$/.test(value) ? Number(value) : value;
  }
  return map;
}

function readForm(spec, form, problems) {
  const item = {};
  for (const field of spec.fields) {
    const input = form.elements[field.name];
    if (field.type === "bool") { item[field.name] = input.checked; continue; }
    const text = input.value.trim();
    if (field.type === "pairs") { item[field.name] = parsePairs(text, field.name, problems); continue; }
    if (field.type === "list") { item[field.name] = text.split(/[,，\s]+/).filter(Boolean); continue; }
    // Empty: the configuration's default (ACD settings: a text the admin emptied, kept empty).
    if (text === "" && field.type !== "select" && !(spec.kind === "acd_settings" && field.type !== "number")) continue;
    if (field.type === "number") item[field.name] = /^-?\d+(\.\d+)?$/.test(text) ? Number(text) : text;
    else item[field.name] = text;
  }
  return item;
}

function showProblems(form, problems) {
  $(".problems", form).innerHTML = problems.map((p) => `<li>${esc(p)}</li>`).join("");
}

// The API's refusal as lines: its `problems` (a 422), else its error.
const problemsOf = (error) => (error.data && error.data.problems && error.data.problems.length
  ? error.data.problems : [error.message]);

async function save(spec) {
  const form = $(`#${spec.kind}-form`);
  const problems = [];
  const item = readForm(spec, form, problems);
  if (spec.shape === "single") {
    showProblems(form, problems);
    if (problems.length) return;
    try { await api("PUT", `/api/config/${spec.kind}`, item, {quiet: true}); }
    catch (error) { showProblems(form, problemsOf(error)); return; }
    await loadKind(spec);
    $(".done", form).textContent = "✓";
    return;
  }
  const key = form.dataset.editing || item[spec.key] || "";
  if (!key) problems.push(`${spec.key}: ${desk.t("required")}`);
  showProblems(form, problems);
  if (problems.length) return;
  try {
    await api("PUT", `/api/config/${spec.kind}/${encodeURIComponent(key)}`, bodyOf(spec, item), {quiet: true});
  } catch (error) { showProblems(form, problemsOf(error)); return; }
  edit(spec, null);
  $(".done", form).textContent = `✓ ${key}`;
  await loadKind(spec);
}

// The API's items ({key, value}) as the form's records, and back: a list kind's value is the record itself;
// a mapping's (prompts, DIDs) is the second field's value; a list of values (not-ready reasons) is its key.
function recordOf(spec, {key, value}) {
  if (spec.shape === "mapping") return {[spec.key]: key, [spec.fields[1].name]: value};
  if (spec.shape === "values") return {[spec.key]: key};
  return value;
}

function bodyOf(spec, record) {
  if (spec.shape === "mapping") return record[spec.fields[1].name] ?? "";
  if (spec.shape === "values") return undefined;
  return record;
}

async function loadKind(spec) {
  if (spec.admin && !isAdmin()) return;
  if (spec.shape === "single") { edit(spec, await api("GET", `/api/config/${spec.kind}`)); return; }
  items[spec.kind] = (await api("GET", `/api/config/${spec.kind}`)).items.map((item) => recordOf(spec, item));
  if (spec.live) await loadLiveAgents();  // a new agent's state, too
  drawKind(spec);
}

function drawKind(spec) {
  const list = items[spec.kind] || [];
  $(`#${spec.kind}-table tbody`).innerHTML = list.map((item) => {
    const key = esc(item[spec.key]);
    const disabled = item.enabled === false;
    const cells = spec.columns.map((c) => `<td class="f-${c}">${esc(cell(item[c]))}</td>`);
    if (spec.live) {
      const state = disabled ? "disabled" : (liveAgents[item[spec.key]] || {}).state || "";
      cells.push(`<td class="state" data-state="${esc(state)}">${esc(disabled ? desk.t("disabled")
        : STATES[desk.lang][state] || state.replace("_", " "))}</td>`);
    }
    const toggle = spec.live ? `<button class="toggle" data-t="${disabled ? "enable" : "disable"}"></button>` : "";
    return `<tr data-key="${key}"${disabled ? ' class="disabled"' : ""}>${cells.join("")}
      <td class="actions"><button class="edit" data-t="edit"></button>${toggle}<button class="remove" data-t="remove"></button></td></tr>`;
  }).join("");
  translateIn($(`#${spec.kind}-table tbody`));
  for (const row of document.querySelectorAll(`#${spec.kind}-table tbody tr`)) {
    const item = list.find((i) => String(i[spec.key]) === row.dataset.key);
    $(".edit", row).onclick = () => { edit(spec, item); $(`#${spec.kind}-form`).scrollIntoView(); };
    $(".remove", row).onclick = () => confirmRemoval(spec, item[spec.key]);
    const toggle = $(".toggle", row);
    if (toggle) toggle.onclick = () => setEnabled(spec, item, item.enabled === false);
  }
}

async function setEnabled(spec, item, enabled) {
  const form = $(`#${spec.kind}-form`);
  const {[spec.key]: key, ...rest} = item;
  try { await api("PUT", `/api/config/${spec.kind}/${encodeURIComponent(key)}`, {...rest, enabled}, {quiet: true}); }
  catch (error) { showProblems(form, problemsOf(error)); return; }
  await loadKind(spec);
}

// A removal is asked for on the page ("remove X?"), not in a browser dialog; the API's refusal (e.g. a queue
// with callers waiting) shows in the same place.
function confirmRemoval(spec, key) {
  ask(`#${spec.kind}-confirm`, `${desk.t("remove_ask")} ${key}?`, async () => {
    await api("DELETE", `/api/config/${spec.kind}/${encodeURIComponent(key)}`, undefined, {quiet: true});
    await loadKind(spec);
  });
}

function ask(selector, question, action) {
  const box = $(selector);
  box.innerHTML = `<span class="question">${esc(question)}</span> <button class="yes">${esc(desk.t("remove"))}</button>
    <button class="no">${esc(desk.t("cancel"))}</button> <span class="refusal error"></span>`;
  box.hidden = false;
  $(".no", box).onclick = () => { box.hidden = true; };
  $(".yes", box).onclick = async () => {
    try { await action(); box.hidden = true; } catch (error) { $(".refusal", box).textContent = problemsOf(error).join("; "); }
  };
}

async function loadLiveAgents() {
  try { liveAgents = Object.fromEntries((await api("GET", "/api/agents")).agents.map((a) => [a.id, a])); }
  catch (error) { liveAgents = {}; }
}

// ---- users, passwords, tokens, the audit log ----

async function loadUsers() {
  const {users} = await api("GET", "/api/users");
  $("#users-table tbody").innerHTML = users.map((u) => `<tr data-key="${esc(u.name)}"><td>${esc(u.name)}</td>
    <td>${esc(u.role)}</td><td>${esc(u.agent_id)}</td><td>${u.locked ? "🔒" : ""}</td>
    <td class="admin-only actions"><button class="reset" data-t="reset_password"></button>
      <button class="remove" data-t="remove"></button></td></tr>`).join("");
  translateIn($("#users-table tbody"));
  for (const row of document.querySelectorAll("#users-table tbody tr")) {
    const name = row.dataset.key;
    $(".reset", row).onclick = () => { const form = $("#reset-form"); form.hidden = false; form.dataset.user = name;
                                       $(".target", form).textContent = name; form.elements.password.focus(); };
    $(".remove", row).onclick = () => ask("#users-confirm", `${desk.t("remove_ask")} ${name}?`, async () => {
      await api("DELETE", `/api/users/${encodeURIComponent(name)}`, undefined, {quiet: true});
      await loadUsers();
    });
  }
  showRole();
}

// Run a form's request; its refusal shows under the form; answers whether it went through.
async function submit(form, request) {
  showProblems(form, []);
  try { await request(); return true; } catch (error) { showProblems(form, problemsOf(error)); return false; }
}

async function createUser(form) {
  const body = {name: form.elements.name.value.trim(), role: form.elements.role.value, password: form.elements.password.value};
  if (form.elements.agent_id.value.trim()) body.agent_id = form.elements.agent_id.value.trim();
  if (await submit(form, () => api("POST", "/api/users", body, {quiet: true}))) { form.reset(); await loadUsers(); }
}

async function resetPassword(form) {
  const name = form.dataset.user;
  const body = {password: form.elements.password.value};
  if (await submit(form, () => api("POST", `/api/users/${encodeURIComponent(name)}/password`, body, {quiet: true}))) {
    form.reset(); form.hidden = true; await loadUsers();
  }
}

async function changeOwnPassword(form) {
  const body = {current_password: form.elements.current_password.value, password: form.elements.password.value};
  $(".done", form).textContent = "";
  if (await submit(form, () => api("POST", `/api/users/${encodeURIComponent(me.name)}/password`, body, {quiet: true}))) {
    form.reset(); $(".done", form).textContent = "✓";
  }
}

const when = (at) => (at ? new Date(at * 1000).toLocaleString() : "");

async function loadTokens() {
  if (!isAdmin()) return;
  const {tokens} = await api("GET", "/api/tokens");
  $("#tokens-table tbody").innerHTML = tokens.map((t) => `<tr data-key="${t.id}"${t.revoked_at ? ' class="disabled"' : ""}>
    <td>${t.id}</td><td class="name">${esc(t.name)}</td><td>${esc(t.role)}</td><td>${esc(t.agent_id)}</td>
    <td>${when(t.created_at)}</td><td>${when(t.expires_at)}</td><td class="revoked">${when(t.revoked_at)}</td>
    <td>${t.revoked_at ? "" : '<button class="revoke" data-t="revoke"></button>'}</td></tr>`).join("");
  translateIn($("#tokens-table tbody"));
  for (const row of document.querySelectorAll("#tokens-table tbody tr")) {
    const button = $(".revoke", row);
    if (button) button.onclick = () => ask("#tokens-confirm", `${desk.t("revoke_ask")} ${$(".name", row).textContent}?`,
      async () => { await api("DELETE", `/api/tokens/${row.dataset.key}`, undefined, {quiet: true}); await loadTokens(); });
  }
}

async function createToken(form) {
  const body = {name: form.elements.name.value.trim(), role: form.elements.role.value};
  if (form.elements.agent_id.value.trim()) body.agent_id = form.elements.agent_id.value.trim();
  const days = form.elements.expires_days.value.trim();
  if (days) body.expires_in_seconds = /^\d+(\.\d+)?$/.test(days) ? Number(days) * 86400 : days;
  let created = null;
  if (await submit(form, async () => { created = await api("POST", "/api/tokens", body, {quiet: true}); })) {
    form.reset();
    $("#token-secret").textContent = created.token;  // shown this once: the controller keeps only its hash
    $("#token-value").hidden = false;
    await loadTokens();
  }
}

async function loadAudit() {
  const form = $("#audit-form");
  const query = new URLSearchParams({limit: "100"});
  for (const name of ["actor", "action"]) if (form.elements[name].value.trim()) query.set(name, form.elements[name].value.trim());
  const {entries} = await api("GET", `/api/audit?${query}`);
  const change = (e) => (e.before === null && e.after === null ? ""
    : `<details><summary>…</summary><pre>${esc(JSON.stringify({before: e.before, after: e.after}, null, 1))}</pre></details>`);
  $("#audit-table tbody").innerHTML = entries.map((e) => `<tr><td>${when(e.at)}</td><td class="actor">${esc(e.actor)}</td>
    <td class="action">${esc(e.action)}</td><td class="target">${esc(e.target)}</td><td>${esc(e.status)}</td>
    <td>${change(e)}</td></tr>`).join("");
}

// ---- the page: sign-in, roles, tabs, live refresh ----

function translateIn(root) { for (const el of root.querySelectorAll("[data-t]")) el.textContent = desk.t(el.dataset.t); }

function showRole() {
  for (const el of document.querySelectorAll(".admin-only, [data-admin]")) {
    if (!isAdmin()) el.hidden = true;
    else if (el.id !== "reset-form") el.hidden = false;
  }
}

function showTab(name) {
  const tab = TABS.includes(name) && (isAdmin() || !ADMIN_ONLY.has(name)) ? name : "agents";
  for (const panel of document.querySelectorAll(".panel")) panel.classList.toggle("current", panel.id === `panel-${tab}`);
  for (const button of document.querySelectorAll("#tabs button")) button.classList.toggle("current", button.dataset.tab === tab);
  if (location.hash !== `#${tab}`) history.replaceState(null, "", `#${tab}`);
  if (tab === "audit") loadAudit().catch(() => {});
}

async function loadAll() {
  await Promise.all([...KINDS.map((spec) => loadKind(spec).catch(() => {})),
                     loadUsers().catch(() => {}), loadTokens().catch(() => {})]);
}

let refreshTimer = null;
function refreshSoon(what) {  // events come in bursts: one reload for them
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => what().catch(() => {}), 200);
}

const SINGULAR = {agent: "agents", queue: "queues", not_ready_reason: "not_ready_reasons",
                  standard_prompt: "standard_prompts", did: "dids", webhook: "webhooks", standards: "standards",
                  acd_setting: "acd_settings"};

let listening = false;
async function enter(user) {
  me = user;
  if (me.role !== "supervisor" && me.role !== "admin") {  // an agent: the toolbar is their page
    $("#signin").hidden = true; $("#not-allowed").hidden = false;
    if (me.role === "agent") location.replace(`/toolbar?agent=${encodeURIComponent(me.agent_id || "")}`);
    return;
  }
  $("#signin").hidden = true; $("#not-allowed").hidden = true;
  $("#tabs").hidden = false; $("#panels").hidden = false; $("#signout").hidden = false;
  $("#who").textContent = `${me.name} (${me.role})`;
  $("#tabs").innerHTML = TABS.filter((t) => isAdmin() || !ADMIN_ONLY.has(t))
    .map((t) => `<button data-tab="${t}" data-t="tab_${t}"></button>`).join("");
  translateIn($("#tabs"));
  for (const button of document.querySelectorAll("#tabs button")) button.onclick = () => showTab(button.dataset.tab);
  showRole();
  showTab(location.hash.slice(1));
  await loadAll();
  document.body.dataset.ready = "true";  // for the tests: everything is drawn once
  if (listening) return;  // signed in again on the same page: the stream is open already
  listening = true;
  desk.listen((event) => {
    if (event.type === "config.changed") {
      const spec = BY_KIND[SINGULAR[(event.data || {}).kind]];
      refreshSoon(spec ? () => loadKind(spec) : loadAll);
      if ($("#panel-audit").classList.contains("current")) loadAudit().catch(() => {});
    } else if (event.type.startsWith("agent.")) {
      refreshSoon(async () => { await loadLiveAgents(); drawKind(BY_KIND.agents); });
    }
  });
}

function signedOut() {
  me = null;
  for (const id of ["#tabs", "#panels", "#signout"]) $(id).hidden = true;
  $("#signin").hidden = false; $("#who").textContent = "";
  desk.error(desk.t("session_ended"));
}

async function signIn() {
  const user = await desk.signIn($("#name").value.trim(), $("#password").value);
  $("#password").value = "";
  if (user !== null) await enter(user);
}

async function begin() {
  const session = await desk.session();
  if (session !== null) await enter(session);
  else $("#signin").hidden = false;
}

desk.translate({
  zh: {title: "管理", session_ended: "会话已结束，请重新登录", user_name: "用户名", password: "密码", login: "登录", sign_out: "退出",
       not_allowed: "坐席账号不能使用管理页面，请使用坐席工具条。", to_toolbar: "打开坐席工具条",
       tab_agents: "坐席", tab_queues: "队列", tab_not_ready_reasons: "示忙原因", tab_standard_prompts: "标准话术",
       tab_dids: "号码路由", tab_webhooks: "Webhook", tab_users: "用户", tab_tokens: "API 令牌", tab_audit: "审计日志",
       tab_standards: "服务标准", tab_acd_settings: "ACD 设置",
       new_item: "新建", edit_item: "修改", save: "保存", cancel: "取消", edit: "修改", remove: "删除",
       disable: "停用", enable: "启用", disabled: "已停用", state: "状态", remove_ask: "确认删除", required: "必填",
       pairs_hint: "格式为 名称=数字，用逗号分隔", empty_default: "留空的字段取配置的默认值",
       f_id: "坐席 ID", f_name: "名称", f_number: "工号", f_endpoint: "话机", f_skills: "技能=等级",
       f_queues: "队列=惩罚值(0 优先)", f_caller_id: "外显号码", f_enabled: "启用", f_title: "显示名", f_strategy: "分配策略",
       f_wrapup_seconds: "话后处理(秒)", f_ring_timeout: "振铃超时(秒)", f_max_wait: "最长等待(秒)", f_overflow: "溢出",
       f_no_agents: "无人签入时", f_announce_interval: "播报间隔(秒)", f_announce_wait_time: "播报等待时长",
       f_announce_agent_number: "播报工号", f_moh_class: "等待音乐(MoH 类)", f_recording: "录音", f_service_level_seconds: "服务水平阈值(秒)",
       f_priority_aging_seconds: "优先级老化(秒)", f_category: "类别",
       f_callback_offer_after: "预计等待超过(秒)时提供回拨", f_callback_order: "回拨顺序", f_callback_retries: "回拨重试次数",
       f_callback_retry_seconds: "回拨重试间隔(秒)", f_callback_caller_id: "回拨主叫号码", f_business_hours: "营业时间", f_reason: "原因", f_text: "内容",
       f_did: "号码", f_flow: "IVR 流程", f_url: "URL", f_secret: "密钥", f_types: "事件类型", f_queue: "队列",
       f_timeout: "超时(秒)", f_max_attempts: "最多尝试", f_service_level_target: "服务水平目标(0-1)",
       f_short_abandon_seconds: "短时放弃(秒)", f_max_talk_seconds: "最长通话(秒)", f_max_acw_seconds: "最长话后(秒)",
       f_max_hold_seconds: "最长保持(秒)", f_max_wait_seconds: "最长排队(秒)", f_center_name: "中心名称",
       f_outbound_caller_id: "外呼显示号码", f_outbound_wrapup_seconds: "外呼话后处理(秒)",
       f_outbound_agent_ring_seconds: "外呼坐席振铃(秒)", f_outbound_customer_ring_seconds: "外呼客户振铃(秒)",
       role: "角色", agent_id: "坐席 ID", locked: "已锁定", user_new: "新建用户", create: "创建",
       reset_password: "重置密码", new_password: "新密码", own_password: "修改我的密码", current_password: "当前密码",
       token_name: "名称", created: "创建时间", expires: "过期时间", revoked: "吊销时间", revoke: "吊销",
       revoke_ask: "确认吊销令牌", token_new: "新建令牌", expires_days: "有效天数", token_hide: "我已保存",
       token_once: "令牌只显示这一次，请立即保存：", actor: "操作人", action: "操作", filter: "筛选", at: "时间",
       target: "对象", status: "结果", change: "变更"},
  en: {title: "Administration", session_ended: "the session has ended: please log in again", user_name: "Name",
       password: "Password", login: "Log in", sign_out: "Log out",
       not_allowed: "Agent accounts cannot use the admin page: please use the agent toolbar.",
       to_toolbar: "Open the agent toolbar",
       tab_agents: "Agents", tab_queues: "Queues", tab_not_ready_reasons: "Not-ready reasons",
       tab_standard_prompts: "Standard prompts", tab_dids: "DIDs", tab_webhooks: "Webhooks", tab_users: "Users",
       tab_tokens: "API tokens", tab_audit: "Audit log", tab_standards: "Service standards",
       tab_acd_settings: "ACD settings",
       new_item: "New", edit_item: "Edit", save: "Save", cancel: "Cancel", edit: "Edit", remove: "Remove",
       disable: "Disable", enable: "Enable", disabled: "disabled", state: "State", remove_ask: "Remove",
       required: "required", pairs_hint: "write name=number, separated by commas",
       empty_default: "a field left empty gets the configuration's default",
       f_id: "Agent id", f_name: "Name", f_number: "Number", f_endpoint: "Phone", f_skills: "Skills (skill=level)",
       f_queues: "Queues (queue=penalty)", f_caller_id: "Caller id", f_enabled: "Enabled", f_title: "Title",
       f_strategy: "Strategy", f_wrapup_seconds: "Wrap-up (s)", f_ring_timeout: "Ring timeout (s)",
       f_max_wait: "Max wait (s)", f_overflow: "Overflow", f_no_agents: "No agents", f_announce_interval: "Announce every (s)",
       f_announce_wait_time: "Announce wait time", f_announce_agent_number: "Announce agent number", f_moh_class: "Music on hold class",
       f_recording: "Recording", f_service_level_seconds: "Service level threshold (s)",
       f_priority_aging_seconds: "Priority aging (s)", f_category: "Category",
       f_callback_offer_after: "Offer a callback after an estimated wait of (s)", f_callback_order: "Callback order",
       f_callback_retries: "Callback retries", f_callback_retry_seconds: "Callback retry interval (s)",
       f_callback_caller_id: "Callback caller id", f_business_hours: "Business hours", f_reason: "Reason", f_text: "Text",
       f_did: "DID", f_flow: "IVR flow", f_url: "URL", f_secret: "Secret", f_types: "Event types", f_queue: "Queue",
       f_timeout: "Timeout (s)", f_max_attempts: "Max attempts", f_service_level_target: "Service level target (0-1)",
       f_short_abandon_seconds: "Short abandon (s)", f_max_talk_seconds: "Max talk (s)", f_max_acw_seconds: "Max ACW (s)",
       f_max_hold_seconds: "Max hold (s)", f_max_wait_seconds: "Max wait (s)", f_center_name: "Center name",
       f_outbound_caller_id: "Outbound caller id", f_outbound_wrapup_seconds: "Outbound wrap-up (s)",
       f_outbound_agent_ring_seconds: "Click-to-dial: agent's ring (s)", f_outbound_customer_ring_seconds: "Outbound: customer's ring (s)",
       role: "Role", agent_id: "Agent id", locked: "Locked", user_new: "New user", create: "Create",
       reset_password: "Reset password", new_password: "New password", own_password: "Change my password",
       current_password: "Current password", token_name: "Name", created: "Created", expires: "Expires",
       revoked: "Revoked", revoke: "Revoke", revoke_ask: "Revoke token", token_new: "New token",
       expires_days: "Valid for (days)", token_hide: "I have saved it",
       token_once: "The token is shown this once: save it now:", actor: "Actor", action: "Action", filter: "Filter",
       at: "When", target: "Target", status: "Status", change: "Change"},
});
for (const spec of KINDS) buildPanel(spec);
translateIn(document.body);
$("#login").onclick = signIn;
$("#password").onkeydown = (e) => { if (e.key === "Enter") signIn(); };
$("#signout").onclick = async () => {
  try { await api("POST", "/api/auth/logout"); } catch (error) { /* shown */ }
  location.reload();
};
const onSubmit = (id, handler) => { $(id).onsubmit = (e) => { e.preventDefault(); handler(e.target); }; };
onSubmit("#users-form", createUser);
onSubmit("#reset-form", resetPassword);
onSubmit("#own-password-form", changeOwnPassword);
onSubmit("#tokens-form", createToken);
onSubmit("#audit-form", () => loadAudit().catch(() => {}));
$("#reset-form .cancel").onclick = () => { $("#reset-form").hidden = true; };
$("#token-hide").onclick = () => { $("#token-secret").textContent = ""; $("#token-value").hidden = true; };
begin();
