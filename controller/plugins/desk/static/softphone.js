// The browser phone (WebRTC) of the agent toolbar, on JsSIP (vendor/jssip.min.js, bundled by `make`).
// The SIP URI, WebSocket URL and SIP password come from GET /api/me/phone with the agent's session: nothing
// secret is in the page or its address. The ACD stays the truth about the call (hold, transfer, state):
// this only rings, answers, hangs up, mutes and sends DTMF, the way a desk phone would.
"use strict";
class Softphone {
  constructor(desk, onChange) {
    this.desk = desk;
    this.onChange = onChange;  // called with the phone's status after every change
    this.ua = null;
    this.session = null;  // the SIP call in the page (ringing or up)
    this.info = null;     // the answer of /api/me/phone
    this.status = "off";  // off | connecting | registered | failed | ringing | in_call
    this.muted = false;
    this.audio = document.getElementById("phone-audio");
  }
  set(status) { this.status = status; this.onChange(status); }
  // The agent's phone details, or null when there is no browser phone here (softphone disabled).
  async details() {
    if (this.info) return this.info;
    try { this.info = await this.desk.api("GET", "/api/me/phone", undefined, {quiet: true}); }
    catch (e) { this.info = null; }
    return this.info;
  }
  // Registers; answers the endpoint to log the agent in on, or null (the reason shows under the page).
  async register(timeoutMs = 10000) {
    const info = await this.details();
    if (info === null) { this.desk.error(this.desk.t("phone_unavailable")); return null; }
    if (this.ua && this.ua.isRegistered()) return info.endpoint;
    this.stop(false);
    JsSIP.debug.disable("JsSIP:*");
    this.ua = new JsSIP.UA({sockets: [new JsSIP.WebSocketInterface(info.websocket_url)], uri: info.uri,
                            authorization_user: info.authorization_user, password: info.password,
                            register: true, register_expires: 300, session_timers: false,
                            user_agent: "ccc-toolbar"});
    const registered = new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.ua.on("registered", () => { clearTimeout(timer); this.set(this.session ? this.status : "registered");
                                       resolve(true); });
      this.ua.on("registrationFailed", (e) => { clearTimeout(timer); this.set("failed");
                                                this.desk.error(`${this.desk.t("phone_failed")}: ${e.cause}`);
                                                resolve(false); });
    });
    this.ua.on("unregistered", () => { if (this.ua) this.set("off"); });
    this.ua.on("disconnected", () => { if (this.ua && this.status !== "failed") this.set("connecting"); });
    this.ua.on("newRTCSession", (e) => this.incoming(e));
    this.set("connecting");
    this.ua.start();
    if (!(await registered)) {
      if (this.status !== "failed") { this.set("failed"); this.desk.error(this.desk.t("phone_failed")); }
      this.stop(false);
      return null;
    }
    return info.endpoint;
  }
  incoming(event) {
    const session = event.session;
    if (event.originator !== "remote" || this.session) {  // one call at a time: a second one is refused
      if (event.originator === "remote") session.terminate({status_code: 486});
      return;
    }
    this.session = session;
    this.muted = false;
    const ended = () => { if (this.session === session) { this.session = null; this.muted = false;
                                                          this.set(this.ua && this.ua.isRegistered() ? "registered" : "off"); } };
    session.on("ended", ended);
    session.on("failed", ended);
    session.on("confirmed", () => this.set("in_call"));
    session.on("peerconnection", (e) => this.play(e.peerconnection));
    this.set("ringing");
  }
  play(connection) {
    connection.addEventListener("track", (e) => { this.audio.srcObject = e.streams[0] || new MediaStream([e.track]); });
  }
  answer() {
    if (!this.session || this.status !== "ringing") return;
    const iceServers = (this.info && this.info.ice_servers) || [];
    this.session.answer({mediaConstraints: {audio: true, video: false}, pcConfig: {iceServers}});
    if (this.session.connection) this.play(this.session.connection);
  }
  hangup() { if (this.session) this.session.terminate(); }
  mute(on) {
    if (!this.session || !this.session.isEstablished()) return;
    if (on) this.session.mute({audio: true}); else this.session.unmute({audio: true});
    this.muted = on;
    this.onChange(this.status);
  }
  dtmf(digit) {
    if (this.session && this.session.isEstablished() && /^[0-9*#]$/.test(digit)) {
      this.session.sendDTMF(digit, {transportType: "RFC2833", duration: 160});
    }
  }
  // Unregisters (the ACD then rings nobody on this endpoint); `forget`: also drop the credentials.
  stop(forget = true) {
    if (this.session) this.session.terminate();
    if (this.ua) { const ua = this.ua; this.ua = null; ua.stop(); }
    if (forget) this.info = null;
    this.set("off");
  }
}
