// The QA page (/qa, README "Quality assurance"): a supervisor listens to a recording in the page, scores it on
// a QA form (points per criterion, comments at the player's position) and saves; the controller computes the
// weighted score. An agent sees their own scores and comments, and hears their own recordings.
"use strict";
const desk = new Desk();
desk.token = "";  // sessions only: the user logs in with name and password
const $ = (selector, root = document) => root.querySelector(selector);
const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
const clock = (seconds) => `${Math.floor(seconds / 60)}:${String(Math.floor(seconds % 60)).padStart(2, "0")}`;
const when = (epoch) => new Date(epoch * 1000).toLocaleString(desk.lang === "zh" ? "zh-CN" : "en-GB");

let me = null;
let forms = [];
let recording = null;  // the recording being scored
let comments = [];  // [{at, text}] of the score being written
let listening = false;  // the event stream is open

async function api(method, path, body, options) {
  try { return await desk.api(method, path, body, options); } catch (error) {
    if (error.status === 401 && me !== null) location.reload();  // the session ended: sign in again
    throw error;
  }
}
const isSupervisor = () => me !== null && (me.role === "supervisor" || me.role === "admin");

async function loadRecordings() {
  const [{recordings}, {scores}] = await Promise.all([api("GET", "/api/recordings?limit=50"),
                                                       api("GET", "/api/qa/scores?limit=1000")]);
  const scored = new Set(scores.map((s) => s.recording_id));
  $("#recordings-table tbody").innerHTML = recordings.filter((r) => r.ended_at !== null).map((r) => `
    <tr data-key="${r.id}"><td>${esc(when(r.started_at))}</td><td>${esc(r.agents.join(", "))}</td>
      <td>${esc(r.queue || "-")}</td><td class="num">${esc(clock(r.duration || 0))}</td>
      <td class="scored">${scored.has(r.id) ? "✓" : ""}</td>
      <td><button class="score" data-t="score_it">${esc(desk.t("score_it"))}</button></td></tr>`).join("");
  for (const row of document.querySelectorAll("#recordings-table tbody tr")) {
    $(".score", row).onclick = () => openRecording(recordings.find((r) => String(r.id) === row.dataset.key));
  }
}

function openRecording(row) {
  recording = row; comments = [];
  $("#scoring").hidden = false; $("#saved").textContent = ""; $("#problems").innerHTML = ""; $("#summary").value = "";
  $("#scoring-title").textContent = `#${row.id} ${when(row.started_at)}`;
  $("#player").src = `/api/recordings/${row.id}/audio`;  // the session cookie: the same access as the API
  $("#scored-agent").innerHTML = row.agents.map((a) => `<option value="${esc(a)}">${esc(a)}</option>`).join("");
  drawCriteria(); drawComments();
}

function currentForm() { return forms.find((f) => f.name === $("#form").value); }

function drawCriteria() {
  const form = currentForm();
  $("#criteria tbody").innerHTML = (form ? form.criteria : []).map((c) => `
    <tr data-key="${esc(c.key)}"><td>${esc(c.label)}${c.critical ? ` <b class="bad" title="${esc(desk.t("critical"))}">!</b>` : ""}</td>
      <td class="num">${esc(c.weight)}</td>
      <td><input type="number" name="${esc(c.key)}" min="0" max="${c.max_points}" step="1" size="4"
                 aria-label="${esc(c.label)}"> / ${c.max_points}</td></tr>`).join("");
}

function drawComments() {
  $("#comments").innerHTML = comments.map((c, i) => `
    <li><button class="seek" data-at="${c.at}">${clock(c.at)}</button> ${esc(c.text)}
      <button class="remove" data-i="${i}" aria-label="${esc(desk.t("remove"))}">×</button></li>`).join("");
  for (const b of document.querySelectorAll("#comments .seek")) b.onclick = () => { $("#player").currentTime = Number(b.dataset.at); };
  for (const b of document.querySelectorAll("#comments .remove")) {
    b.onclick = () => { comments.splice(Number(b.dataset.i), 1); drawComments(); };
  }
}

function addComment() {
  const text = $("#comment-text").value.trim();
  if (!text) return;
  comments.push({at: Math.round($("#player").currentTime * 10) / 10, text});
  comments.sort((a, b) => a.at - b.at);
  $("#comment-text").value = "";
  drawComments();
}

async function save() {
  const points = {};
  for (const input of document.querySelectorAll("#criteria input")) {
    if (input.value !== "") points[input.name] = Number(input.value);
  }
  $("#problems").innerHTML = ""; $("#saved").textContent = "";
  try {
    const score = await api("POST", "/api/qa/scores", {recording_id: recording.id, form: $("#form").value,
                                                        agent_id: $("#scored-agent").value, points, comments,
                                                        summary: $("#summary").value}, {quiet: true});
    $("#saved").textContent = `${desk.t("saved")} ${score.score}`;
    $("#saved").dataset.score = score.id;
    await Promise.all([loadScores(), loadRecordings()]);
  } catch (error) {
    const problems = (error.data && error.data.problems) || [error.message];
    $("#problems").innerHTML = problems.map((p) => `<li>${esc(p)}</li>`).join("");
  }
}

// ---- the forms: a table of each one's latest version, and an editor (a save is a new version) ----

async function loadForms() {
  forms = (await api("GET", "/api/qa/forms")).forms.filter((f) => !f.retired);
  const chosen = $("#form").value;
  $("#form").innerHTML = forms.map((f) => `<option value="${esc(f.name)}">${esc(f.title || f.name)} v${f.version}</option>`).join("");
  if (forms.some((f) => f.name === chosen)) $("#form").value = chosen;
  $("#forms-table tbody").innerHTML = forms.map((f) => `
    <tr data-key="${esc(f.name)}"><td>${esc(f.name)}</td><td>${esc(f.title)}</td><td class="num version">${f.version}</td>
      <td>${f.criteria.map((c) => esc(c.label)).join(" · ")}</td>
      <td><button class="edit" data-t="edit">${esc(desk.t("edit"))}</button></td></tr>`).join("");
  for (const row of document.querySelectorAll("#forms-table tbody tr")) {
    $(".edit", row).onclick = () => editForm(forms.find((f) => f.name === row.dataset.key));
  }
}

function criterionRow(c = {key: "", label: "", weight: 1, max_points: 5, critical: false}) {
  const tr = document.createElement("tr");
  tr.innerHTML = `<td><input name="key" size="10" value="${esc(c.key)}" aria-label="${esc(desk.t("key"))}"></td>
    <td><input name="label" size="30" value="${esc(c.label)}" aria-label="${esc(desk.t("criterion"))}"></td>
    <td><input name="weight" type="number" min="0.01" step="any" size="4" value="${esc(c.weight)}" aria-label="${esc(desk.t("weight"))}"></td>
    <td><input name="max_points" type="number" min="1" max="100" size="4" value="${esc(c.max_points)}" aria-label="${esc(desk.t("max_points"))}"></td>
    <td><input name="critical" type="checkbox" ${c.critical ? "checked" : ""} aria-label="${esc(desk.t("critical_short"))}"></td>
    <td><button class="remove" aria-label="${esc(desk.t("remove"))}">×</button></td>`;
  $(".remove", tr).onclick = () => tr.remove();
  $("#form-criteria tbody").append(tr);
}

function editForm(form) {
  $("#form-editor").open = true;
  $("#form-name").value = form ? form.name : ""; $("#form-title").value = form ? form.title : "";
  $("#form-criteria tbody").innerHTML = ""; $("#form-problems").innerHTML = ""; $("#form-saved").textContent = "";
  for (const c of form ? form.criteria : [undefined]) criterionRow(c);
}

async function saveForm() {
  const criteria = [...document.querySelectorAll("#form-criteria tbody tr")].map((tr) => ({
    key: $("[name=key]", tr).value.trim(), label: $("[name=label]", tr).value.trim(),
    weight: Number($("[name=weight]", tr).value), max_points: Number($("[name=max_points]", tr).value),
    critical: $("[name=critical]", tr).checked}));
  $("#form-problems").innerHTML = ""; $("#form-saved").textContent = "";
  try {
    const name = $("#form-name").value.trim();
    const answer = await api("PUT", `/api/qa/forms/${encodeURIComponent(name)}`,
                             {title: $("#form-title").value.trim(), criteria}, {quiet: true});
    $("#form-saved").textContent = answer.changed ? `${desk.t("version_saved")} ${answer.form.version}` : desk.t("unchanged");
    $("#form-saved").dataset.version = answer.form.version;
    await loadForms();
    if (recording !== null) drawCriteria();
  } catch (error) {
    const problems = (error.data && error.data.problems) || [error.message];
    $("#form-problems").innerHTML = problems.map((p) => `<li>${esc(p)}</li>`).join("");
  }
}

async function loadScores() {
  const {scores} = await api("GET", "/api/qa/scores?limit=200");
  $("#scores-table tbody").innerHTML = scores.map((s) => `
    <tr data-key="${s.id}"><td>${esc(when(s.scored_at))}</td><td class="agent">${esc(s.agent_id)}</td>
      <td>${esc(s.form.title || s.form.name)} v${s.form.version}</td>
      <td class="num score ${s.critical_failed ? "bad" : ""}">${s.score}</td><td>${esc(s.scorer)}</td>
      <td><button class="open" data-t="open">${esc(desk.t("open"))}</button></td></tr>`).join("");
  for (const row of document.querySelectorAll("#scores-table tbody tr")) {
    $(".open", row).onclick = () => showScore(scores.find((s) => s.id === row.dataset.key));
  }
}

function showScore(score) {
  $("#detail").hidden = false; $("#detail").dataset.score = score.id;
  $("#detail-score").textContent = `${score.score}${score.critical_failed ? ` (${desk.t("critical_failed")})` : ""}`;
  $("#detail-player").src = `/api/recordings/${score.recording_id}/audio`;
  $("#detail-criteria tbody").innerHTML = score.criteria.map((c) => `
    <tr><td>${esc(c.label)}</td><td class="num">${c.points ?? "-"} / ${c.max_points}</td></tr>`).join("");
  $("#detail-comments").innerHTML = score.comments.map((c) => `
    <li><button class="seek" data-at="${c.at}">${clock(c.at)}</button> <span class="text">${esc(c.text)}</span></li>`).join("");
  for (const b of document.querySelectorAll("#detail-comments .seek")) {
    b.onclick = () => { $("#detail-player").currentTime = Number(b.dataset.at); $("#detail-player").play().catch(() => {}); };
  }
  $("#detail-summary").textContent = score.summary;
}

async function enter(user) {
  me = user;
  $("#signin").hidden = true; $("#panels").hidden = false; $("#signout").hidden = false;
  $("#who").textContent = `${me.name} (${me.role})`;
  for (const el of document.querySelectorAll(".supervisor-only")) el.hidden = !isSupervisor() || el.id === "scoring";
  $("#scores h2").textContent = desk.t(isSupervisor() ? "scores" : "my_scores");
  if (isSupervisor()) {
    await loadForms();
    await loadRecordings();
  }
  await loadScores();
  document.body.dataset.ready = "true";  // for the tests: everything is drawn once
  if (listening) return;
  listening = true;  // a new score (an agent: one of theirs) shows at once
  desk.listen(() => { loadScores().catch(() => {}); if (isSupervisor()) loadRecordings().catch(() => {}); },
              {types: "qa.scored"});
}

async function signIn() {
  const user = await desk.signIn($("#name").value.trim(), $("#password").value);
  $("#password").value = "";
  if (user !== null) await enter(user);
}

desk.translate({
  zh: {title: "质检", user_name: "用户名", password: "密码", login: "登录", sign_out: "退出",
       recordings: "录音", started: "开始时间", agent: "坐席", queue: "队列", duration: "时长", scored: "已评分",
       score_it: "评分", scoring: "评分录音", form: "质检表", criterion: "评分项", weight: "权重", points: "得分",
       comment: "批注", comment_here: "在当前位置批注", summary: "总评", save: "保存", saved: "已保存，得分",
       scores: "质检评分", my_scores: "我的质检评分", scored_at: "评分时间", score: "得分", scorer: "评分人",
       open: "查看", detail: "评分详情", critical: "关键项：得 0 分则总分为 0", critical_failed: "关键项未通过",
       remove: "删除", forms: "质检表", form_name: "名称", form_title: "标题", version: "版本", criteria: "评分项",
       edit: "编辑", form_edit: "新建或修改质检表（保存即生成新版本，已有评分保留原版本）", key: "代码",
       max_points: "满分", critical_short: "关键项", add_criterion: "添加评分项", save_form: "保存质检表",
       version_saved: "已保存为版本", unchanged: "没有变化"},
  en: {title: "Quality", user_name: "Name", password: "Password", login: "Log in", sign_out: "Log out",
       recordings: "Recordings", started: "Started", agent: "Agent", queue: "Queue", duration: "Length",
       scored: "Scored", score_it: "Score", scoring: "Scoring recording", form: "QA form", criterion: "Criterion",
       weight: "Weight", points: "Points", comment: "Comment", comment_here: "Comment at this point",
       summary: "Summary", save: "Save", saved: "Saved, score", scores: "QA scores", my_scores: "My QA scores",
       scored_at: "Scored", score: "Score", scorer: "Scorer", open: "Open", detail: "Score",
       critical: "critical: no points here make the score 0", critical_failed: "critical criterion failed",
       remove: "Remove", forms: "QA forms", form_name: "Name", form_title: "Title", version: "Version",
       criteria: "Criteria", edit: "Edit",
       form_edit: "New or changed QA form (a save is a new version; existing scores keep theirs)", key: "Key",
       max_points: "Max points", critical_short: "Critical", add_criterion: "Add criterion", save_form: "Save form",
       version_saved: "Saved as version", unchanged: "No change"},
});
$("#login").onclick = signIn;
$("#password").onkeydown = (e) => { if (e.key === "Enter") signIn(); };
$("#signout").onclick = async () => {
  try { await api("POST", "/api/auth/logout"); } catch (error) { /* shown */ }
  location.reload();
};
$("#form").onchange = drawCriteria;
$("#criterion-add").onclick = () => criterionRow();
$("#form-save").onclick = saveForm;
$("#comment-add").onclick = addComment;
$("#comment-text").onkeydown = (e) => { if (e.key === "Enter") addComment(); };
$("#save").onclick = save;
(async () => {
  const session = await desk.session();
  if (session !== null) await enter(session);
  else $("#signin").hidden = false;
})();
