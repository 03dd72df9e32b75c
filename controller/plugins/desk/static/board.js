// The figures the wallboard and the supervisor console both show: the queues' and the agents' rows, drawn
// from /api/queues, /api/agents and /api/adherence. Text from the API goes through esc(): never as HTML.
"use strict";
const mmss = (s) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;
const BOARD_STATES = {zh: {logged_out: "未登录", ready: "示闲", not_ready: "示忙", ringing: "振铃", talking: "通话",
                           on_hold: "保持", acw: "话后处理"}, en: {}};
// Schedule adherence (README "Schedules and adherence"): the agent's state against their shift now.
const BOARD_ADHERENCE = {zh: {in: "符合排班", out: "偏离排班", pending: "偏离中", unscheduled: "-"},
                         en: {in: "in", out: "OUT", pending: "drifting", unscheduled: "-"}};
const Board = {
  stateName(lang, state) { return BOARD_STATES[lang][state] || state.replace("_", " "); },
  // The tables' heading rows (texts filled in by desk.translate); `extra`: the console's own headings.
  queueHeader() {
    return `<tr>${["queue", "waiting", "longest", "ready", "logged_in", "answered", "abandoned", "service_level"]
      .map((key) => `<th data-t="${key}"></th>`).join("")}</tr>`;
  },
  agentHeader(extra = []) {
    return `<tr>${["agent", "name", "state", "for", "calls", "adherence", ...extra]
      .map((key) => `<th data-t="${key}"></th>`).join("")}</tr>`;
  },
  // <tr> rows of the queues' table; `extra(q)`: more cells at the end of each row (the console's).
  queueRows(lang, queues, extra = () => "") {
    return queues.map((q) => {
      const level = q.service_level === null ? "-" : `${(100 * q.service_level).toFixed(0)}%`;
      const bad = q.service_level !== null && q.service_level < 0.8 ? " bad" : "";
      return `<tr data-queue="${esc(q.name)}"><td>${esc(q.title || q.name)}</td><td class="num waiting">${q.waiting}${q.callbacks_waiting
        ? ` <small class="callbacks">(${q.callbacks_waiting} ${{zh: "回拨", en: "callbacks"}[lang] || "callbacks"})</small>` : ""}</td>
        <td class="num">${mmss(q.longest_wait || 0)}</td><td class="num">${q.agents_ready}</td>
        <td class="num">${q.agents_logged_in}</td><td class="num">${q.answered}</td><td class="num">${q.abandoned}</td>
        <td class="num${bad}">${level}</td>${extra(q)}</tr>`; }).join("");
  },
  // <tr> rows of the agents' table, with their adherence; `extra(a)`: more cells (the console's actions).
  agentRows(lang, agents, adherence, extra = () => "") {
    const scheduled = Object.fromEntries(adherence.map((a) => [a.agent_id, a]));
    const now = Date.now() / 1000;
    return agents.map((a) => `<tr data-agent="${esc(a.id)}">
      <td>${esc(a.number || a.id)}</td><td>${esc(a.name)}</td>
      <td class="state" data-state="${esc(a.state)}">${esc(Board.stateName(lang, a.state))}${a.reason ? " · " + esc(Board.texts[lang]["reason_" + a.reason] || a.reason) : ""}</td>
      <td class="num">${a.since ? mmss(now - a.since) : ""}</td><td class="num">${a.calls_answered}</td>
      ${Board.adherenceCell(lang, scheduled[a.id], now)}${extra(a)}</tr>`).join("");
  },
  adherenceCell(lang, row, now) {
    const status = row ? row.status : "unscheduled";
    const out = row && row.out_since ? ` ${mmss(now - row.out_since)}` : "";
    const title = row ? ` title="${esc(row.scheduled)}"` : "";
    return `<td class="adherence${status === "out" ? " bad" : ""}" data-adherence="${esc(status)}"${title}>${esc(BOARD_ADHERENCE[lang][status] || status)}${status === "out" ? out : ""}</td>`;
  },
  // What an alert.raised event (or a row of /api/alerts) says, in one line.
  alertText(alert) {
    return `${alert.kind} ${alert.subject}: ${alert.value} > ${alert.threshold}`;
  },
  // The texts of the figures' headings, shared by both pages.
  texts: {
    zh: {queues: "队列", queue: "队列", waiting: "排队", longest: "最长等待", ready: "示闲坐席", logged_in: "签入坐席",
         answered: "接通", abandoned: "放弃", service_level: "服务水平", agents: "坐席", agent: "工号", name: "姓名",
         state: "状态", for: "持续", calls: "接通数", adherence: "排班遵守", alerts: "告警",
         reason_meal: "就餐", reason_meeting: "会议", reason_training: "培训", reason_restroom: "休息",
         reason_helping: "协助", reason_no_answer: "未接"},
    en: {queues: "Queues", queue: "Queue", waiting: "Waiting", longest: "Longest wait", ready: "Ready",
         logged_in: "Logged in", answered: "Answered", abandoned: "Abandoned", service_level: "Service level",
         agents: "Agents", agent: "Agent", name: "Name", state: "State", for: "For", calls: "Calls",
         adherence: "Adherence", alerts: "Alerts"},
  },
};
