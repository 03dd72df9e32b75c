"""The controller process: wires ARI, the store, the plugins and the HTTP server, and runs them.

Structured concurrency: one TaskGroup holds the event stream, the store's writer and every
call's task; stopping the controller leaves live calls in Asterisk (the next process resumes them
from the live-call picture), then cancels the group without letting the calls' tasks touch
Asterisk or the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from controller import __version__
from controller.acd.engine import AcdError
from controller.ari.client import AriClient
from controller.ari.dispatcher import Dispatcher
from controller.ari.errors import AriError
from controller.ari.events import EventStream
from controller.clock import Clock, SystemClock
from controller.collector import tune_gc_after_start_up
from controller.config import Config
from controller.customers import CustomerDirectory
from controller.http.openapi import openapi_document
from controller.http.server import SocketRegistry, build_app, public, reload_tls, roles, start_http, tls_context
from controller.instance import EXIT_ANOTHER_CONTROLLER
from controller.leadership import EXIT_DEPOSED, Leadership
from controller.live_config import LiveConfig
from controller.logs import setup_logging
from controller.media.prompts import PromptRenderer
from controller.nodes import Nodes
from controller.plugins.access import resources as access_resources
from controller.plugins.access.services import AccessService
from controller.plugins.access.state_persistor import AccessRecords, AuditLog
from controller.plugins.acd import callback_resources
from controller.plugins.acd import resources as acd_resources
from controller.plugins.acd.callback_records import CallbackRecords
from controller.plugins.acd.callbacks import CallbackService
from controller.plugins.acd.services import AcdService
from controller.plugins.acd.state_persistor import AcdRecords
from controller.plugins.admin import resources as admin_resources
from controller.plugins.admin.services import AdminService
from controller.plugins.agi.server import FastAgiServer
from controller.plugins.agi.services import AgiService
from controller.plugins.alerts import resources as alert_resources
from controller.plugins.alerts.notifier import AlertNotifier
from controller.plugins.alerts.services import AlertService
from controller.plugins.alerts.state_persistor import AlertRecords
from controller.plugins.ami import resources as ami_resources
from controller.plugins.ami.services import AmiService, AmiUnavailable
from controller.plugins.calls import resources as calls_resources
from controller.plugins.calls.live_state import LiveCallState
from controller.plugins.calls.services import CallsService
from controller.plugins.calls.state_persistor import CallRecords
from controller.plugins.campaigns import resources as campaign_resources
from controller.plugins.campaigns.services import CampaignService
from controller.plugins.campaigns.state_persistor import CampaignRecords
from controller.plugins.compat.ami_server import AmiServer
from controller.plugins.compat.services import CompatService
from controller.plugins.cti import resources as cti_resources
from controller.plugins.cti.notifier import Webhook, WebhookNotifier
from controller.plugins.cti.services import EventBus
from controller.plugins.desk import resources as desk_resources
from controller.plugins.desk.services import WebrtcEndpoints, browser_phones, phone_agents
from controller.plugins.fax import resources as fax_resources
from controller.plugins.fax.services import FaxService
from controller.plugins.fax.state_persistor import FaxRecords
from controller.plugins.inbox import resources as inbox_resources
from controller.plugins.inbox.services import InboxError, InboxService
from controller.plugins.inbox.state_persistor import InboxRecords
from controller.plugins.ivr import resources as ivr_resources
from controller.plugins.ivr.services import IvrService
from controller.plugins.messages import resources as message_resources
from controller.plugins.messages.notifier import MessageNotifier
from controller.plugins.messages.services import MessageService
from controller.plugins.messages.state_persistor import MessageRecords
from controller.plugins.metrics import resources as metrics_resources
from controller.plugins.qa import resources as qa_resources
from controller.plugins.qa.services import QaService
from controller.plugins.qa.state_persistor import QaRecords
from controller.plugins.recordings import resources as recording_resources
from controller.plugins.recordings.services import RecordingService
from controller.plugins.recordings.state_persistor import RecordingIndex
from controller.plugins.reload import resources as reload_resources
from controller.plugins.reload.services import ConfigReloader
from controller.plugins.reports import resources as report_resources
from controller.plugins.reports.services import ReportService
from controller.plugins.wfm import resources as wfm_resources
from controller.plugins.wfm.services import WfmService
from controller.plugins.wfm.state_persistor import ShiftRecords
from controller.store.db import Store, StoreError
from controller.store.retention import RetentionJob

log = logging.getLogger("controller")


class BackgroundService(Protocol):
    """A plugin's long-running part (timers, pollers): runs until cancelled."""

    async def run(self) -> None: ...


#: How long a graceful stop waits for the store to commit what the live calls wrote.
STOP_FLUSH_SECONDS = 5.0


class Controller:
    def __init__(self, config: Config, clock: Clock | None = None, leadership: Leadership | None = None) -> None:
        self.config = config  # as the file says; the managed sections as they are now: self.live.current
        self.live = LiveConfig(config)
        self.clock = clock or SystemClock()
        self.started_at = time.time()
        # The Asterisk servers (one without `nodes:`); `self.ari` is the first one's client.
        self.nodes = Nodes(config)
        self.ari = self.nodes.default.ari
        store = config.store
        # Active/standby (PostgreSQL): this process leads; its batches are fenced by the lease's token.
        self.leadership = leadership
        self.store = Store(store.url or config.database_path, password=store.password, spill_dir=config.data_path,
                           connect_timeout=store.connect_timeout, statement_timeout=store.statement_timeout,
                           application_name=leadership.application_name if leadership else "ccc-controller")
        if leadership is not None:
            self.store.fence, self.store.on_deposed = leadership.fence, leadership.lost
        self.records = CallRecords(self.store, self.clock.now)
        self.dispatcher = Dispatcher(on_new_channel=self._on_new_channel)
        self.events = EventBus(self.store, self.clock.now)
        self.audit = AuditLog(self.store, time.time)
        self.admin = AdminService(self.store, self.live, self.audit, time.time, publish=self.events.publish)
        self.webhooks = WebhookNotifier([Webhook.from_config(entry) for entry in config.webhooks], self.events,
                                        self.store, self._http)
        self.compat = CompatService(config, self.store, self.events)  # queue_log and CDRs for Asterisk tools
        self.calls = CallsService(config=config, ari=self.ari, dispatcher=self.dispatcher, records=self.records,
                                  spawn=self.spawn, publish=self.events.publish)
        self.calls.live = LiveCallState(self.store, time.time)
        self.prompts = PromptRenderer(Path(config.asterisk.sounds_dir))
        self.recordings = RecordingService(config=config, ari=self.ari,
                                           index=RecordingIndex(self.store, self.clock.now),
                                           publish=self.events.publish)
        self.acd = AcdService(config=self.live, clock=self.clock, records=AcdRecords(self.store, self.clock.now),
                              publish=self.events.publish, media_for=self.prompts.media_for,
                              originate=self.calls.originate, recordings=self.recordings)
        self.acd.live, self.acd.ari = self.calls.live, self.ari
        self.acd.talk_bridges = self.calls.talk_bridges
        self.callbacks = CallbackService(self.acd, CallbackRecords(self.store, self.clock.now))
        self.calls.register_resumer("talk", self.acd.call_control.resume_talk, self.acd.call_control.close_talk)
        self.calls.register_cleanup(self.acd.release_unresumed)
        self.recordings.picture = self.calls.live
        self.qa = QaService(QaRecords(self.store), self.audit, self.recordings.index.get, time.time,
                            publish=self.events.publish)
        self.calls.register_resumer("recording", self.recordings.resume_recording, self.recordings.close_recording)
        self.retention = RetentionJob(self.store, config.retention, webhooks=[hook.name for hook in config.webhooks],
                                      purge_tts=self.prompts.purge_cache)
        self.ivr = IvrService(config=config, clock=self.clock, store=self.store, publish=self.events.publish,
                              media_for=self.prompts.media_for, http=self._http, enqueue=self.acd.enqueue,
                              fallback=self.calls.greeting_then_fallback)
        self.calls.inbound_handler = self.ivr.handle
        self.ivr.queue_ahead = self.acd.queueing.read_history_ahead
        self._resume_waiting_and_ivr_callers()
        self.admin.register_guard("queue", self.acd.queue_removal_refusal)
        self.live.subscribe("queue_log and CDR agents", self.compat.configuration_changed)
        self.calls.phone_call_handler = self.acd.outbound.phone_call
        self.sockets = SocketRegistry()
        self.access = AccessService(AccessRecords(self.store), self.audit, config.auth,
                                    now=time.time, sockets=self.sockets,
                                    agent_exists=lambda agent_id: agent_id in self.acd.agent_configs,
                                    agent_refusal=self.acd.agent_refusal,
                                    agent_request_refusal=self.acd.agent_request_refusal,
                                    demo=config.demo)
        self.live.subscribe("WebSockets of agents removed or disabled", self._close_refused_agents_sockets)
        # Asterisk's browser-phone endpoints follow the agents (softphone.pjsip_conf): README "Browser phone".
        self.webrtc_endpoints = WebrtcEndpoints(
            config.softphone, nodes=lambda: list(self.nodes.by_name),
            reload=lambda name: self.nodes.client(name).reload_module("res_pjsip.so"))
        self.live.subscribe("browser phones' endpoints", self._sync_browser_phones)
        self.access.on_users_changed = self._sync_browser_phones
        self.acd.refused_agent_gone_hooks.append(self._close_sockets_of_agent_gone)
        self.tls = tls_context(config.http.tls_cert, config.http.tls_key) if config.http.tls else None
        self.reports = ReportService(config=config, store=self.store, acd=self.acd, clock=self.clock)
        self.wfm = WfmService(config=config, reports=self.reports, shifts=ShiftRecords(self.store, self.clock.now))
        self._follow_dids_webhooks_standards_prompts()
        self.campaigns = CampaignService(acd=self.acd, records=CampaignRecords(self.store), clock=self.clock,
                                         spawn=self.spawn)
        self.campaigns.ivr = self.ivr  # IVR-only campaigns' flows
        self.stream = self._wire_nodes()  # what reads "the" ARI stream reads the first node's
        self.ami = self.nodes.default.ami
        # app_queue's AMI queue events and actions for wallboards (compat.ami_port; off by default).
        self.ami_server = AmiServer(config, self.acd) if config.compat.ami_port else None
        if self.ami_server is not None:
            self.compat.listeners.append(self.ami_server.on_event)
        # Outgoing HTTP for the application (IVR back-ends, tier look-ups, webhooks); opened in run().
        self.http_client: aiohttp.ClientSession | None = None
        # panoramisk's Application needs a running loop: built in run().
        self.agi_server: FastAgiServer | None = None
        self._agi_listener: asyncio.Server | None = None  # FastAGI's listening socket (run())
        self._http_runner: web.AppRunner | None = None  # the API's (run())
        self._tasks: asyncio.TaskGroup | None = None
        self._call_tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._starting: asyncio.Task[None] | None = None  # run()'s task while it starts up
        self.ivr.recordings = self.recordings
        self.inbox = self._inbox()
        self.messages = MessageService(MessageRecords(self.store), MessageNotifier(self.events.publish),
                                       users=self.access.user_list, now=self.clock.now)
        self.alerts = AlertService(AlertRecords(self.store), AlertNotifier(self.events.publish), self.clock.now)
        self.faxes = FaxService(settings=lambda: self.live.current.fax, inbox=self.inbox,
                                records=FaxRecords(self.store), ari=self.ari,
                                trunk_dial=lambda: self.live.current.asterisk.trunk_dial,
                                now=self.clock.now, publish=self.events.publish)
        # After the configuration file and the flows, on each reload (SIGHUP, POST /api/config/reload).
        self.reload_hooks: list[Callable[[], Awaitable[object]]] = [self._reload_tls]
        self.reloader = ConfigReloader(config.source, self.live)
        self._reload_lock = asyncio.Lock()
        self.customers: CustomerDirectory | None = None  # needs the HTTP client: built in run()
        self.live.subscribe("settings from the file", self._follow_file_settings)
        self.metric_sources: list[metrics_resources.MetricSource] = [metrics_resources.controller_metrics(self),
                                                                     metrics_resources.acd_metrics(self.acd),
                                                                     metrics_resources.ivr_metrics(self.ivr),
                                                                     self.compat.metrics]

    def _wire_nodes(self) -> EventStream:
        """Several Asterisk servers (controller/nodes.py): an event stream per node, each call on its node's
        client, agents' phones on a node that is down not ready (phone_unreachable) until it is back."""
        nodes = self.nodes
        for node in nodes:
            node.stream = EventStream(node.ari, self.config.ari.app, on_event=self.dispatcher.dispatch,
                                      on_connected=functools.partial(self._node_connected, node.name),
                                      on_disconnected=functools.partial(nodes.disconnected, node.name),
                                      on_replaced=self._application_replaced)
        self.calls.node_client = self.recordings.node_client = self.acd.node_client = nodes.client
        self.calls.client_for_dial = nodes.client_for_dial
        self.calls.node_count, self.calls.node_names = len(nodes), list(nodes.by_name)
        self.acd.node_readopted = lambda name: name in self.calls.readopted_nodes
        self.campaigns.dial_ready = lambda: nodes.dialing.node_of_dial(
            self.acd.config.asterisk.trunk_dial) in self.calls.readopted_nodes
        self.acd.engine.phone_reachable = nodes.phone_reachable
        self.acd.phone_at = nodes.dialing.split_phone
        nodes.on_down.append(self._node_down)
        nodes.on_up.append(lambda _name: self.acd.apply(self.acd.engine.phones_reachable_again()))
        assert nodes.default.stream is not None
        return nodes.default.stream

    async def _node_connected(self, name: str) -> None:
        self.nodes.connected(name)
        await self.calls.readopt(name)
        await self.webrtc_endpoints.node_connected(name)

    def _node_down(self, name: str) -> None:
        self.calls.node_lost(name)
        self.acd.apply(self.acd.engine.phones_unreachable())

    def _inbox(self) -> InboxService:
        """Voicemail as work and follow-up tasks (README "Voicemail inbox", "Follow-up tasks")."""
        inbox = InboxService(settings=lambda: self.live.current.inbox, records=InboxRecords(self.store, self.clock.now),
                             now=self.clock.now, publish=self.events.publish,
                             recordings_dir=lambda: self.live.current.asterisk.recordings_dir,
                             data_dir=self.config.data_path)

        async def click_to_dial(agent_id: str, number: str) -> dict[str, Any]:
            try:
                return await self.acd.click_to_dial(agent_id, number)
            except AcdError as exc:
                raise InboxError(str(exc)) from exc
        inbox.click_to_dial = click_to_dial
        return inbox

    def _agent_queues(self, agent_id: str) -> list[str] | None:
        agent = self.acd.agent_configs.get(agent_id)
        return None if agent is None else list(agent.queues)

    def _resume_waiting_and_ivr_callers(self) -> None:
        """Waiting callers (and rings) and callers in a flow of a previous process go on (issue 13)."""
        self.ivr.live = self.calls.live
        self.calls.register_resumer("queue", self.acd.queue_resume.resume, self.acd.queue_resume.close)
        self.calls.register_resumer("ivr", self.ivr.resume)
        self.acd.after_resumed_talk = self.ivr.after_resumed_talk(self.acd.after_resumed_talk)

        async def route_after_resume(_channels: object, _bridges: object) -> None:
            self.acd.queue_resume.route_after_resume()
        self.calls.register_cleanup(route_after_resume)

    def _follow_dids_webhooks_standards_prompts(self) -> None:
        """These managed kinds take effect live (README "Administration (live configuration)"); the ACD reads
        the service standards and standard prompts from the live configuration when it uses them."""
        self.admin.register_check(self.ivr.did_problems)
        self.live.subscribe("IVR DIDs", self.ivr.apply_dids)

        async def apply_webhooks(_old: Config, new: Config) -> None:
            await self.webhooks.apply([Webhook.from_config(entry) for entry in new.webhooks])
            self.retention.webhooks = [hook.name for hook in new.webhooks]  # their undelivered events are kept
        self.live.subscribe("webhooks", apply_webhooks)

    def _on_new_channel(self, event: Any) -> None:
        self.calls.on_stasis_start(event)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a call's coroutine inside the controller's TaskGroup."""
        if self._tasks is None:
            coro.close()
            raise RuntimeError("controller is not running")
        task = self._tasks.create_task(_contained(coro))
        self._call_tasks.add(task)
        task.add_done_callback(self._call_tasks.discard)

    def stop(self) -> None:
        if self._starting is not None and not self._stop.is_set():  # (once: run() undoes exactly one cancel)
            self._starting.cancel()  # a start-up can wait without end (a lock held elsewhere): end it
        self._stop.set()

    def _application_replaced(self) -> None:
        """Another process took our ARI application over: the calls are its calls now. Stop acting at
        once, the way a crash would: a graceful stop would hand them to the fallback route and tear
        their bridges down under the other process."""
        log.critical("ARI application %s was taken over by another process (ApplicationReplaced): "
                     "this controller stops without touching any call; run only one controller per "
                     "ARI application", self.config.ari.app)
        logging.shutdown()
        # Active/standby: a standby took over (its leadership says so): start again, as a standby.
        os._exit(EXIT_DEPOSED if self.leadership is not None else EXIT_ANOTHER_CONTROLLER)

    def reload(self) -> None:
        """SIGHUP: as `reload_everything` (its report is logged)."""
        if self._tasks is not None:
            self.spawn(self._reload_on_signal())

    async def _reload_on_signal(self) -> None:
        try:
            await self.reload_everything()
        except Exception:  # never end the TaskGroup that carries the calls
            log.exception("reload failed; what was live stays live")

    async def reload_everything(self) -> dict[str, Any]:
        """Reload means reload (README "Reloading the configuration"): the configuration file (every setting
        that can change without a restart goes live; the report names the others), then the IVR flows, then
        the certificate. A file with any problem changes nothing, flows included."""
        async with self._reload_lock:
            report = await self.reloader.reload()
            if report.problems:
                return {"ok": False, "errors": report.problems, "configuration": report.as_dict(),
                        "flows": sorted(self.ivr.repository.snapshot.flows)}
            flows = await self.ivr.reload()
            await self._run_reload_hooks()
            return {**flows, "configuration": report.as_dict()}

    def _follow_file_settings(self, old: Config, new: Config) -> None:
        """Services that copied a setting of the file at start take the live one (`plugins/reload/services.py`
        says which settings can change; the others keep their running values in `new`)."""
        if new.logging != old.logging:
            setup_logging(new.logging.level, new.logging.format, new.logging.show_caller_numbers)
        self.access.settings = new.auth
        self.retention.settings = new.retention
        if self.customers is not None:
            self.customers.settings = new.customers
        # asterisk.*, ivr.no_flow, ...; the ACD reads the live configuration itself (`AcdService.config`).
        for service in (self.calls, self.recordings, self.ivr):
            service.config = new

    async def _reload_tls(self) -> None:
        """Certificate renewal: new connections get the files' certificate (README "HTTPS")."""
        if self.tls is None:
            return
        try:
            await asyncio.to_thread(reload_tls, self.tls, self.config.http.tls_cert, self.config.http.tls_key)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            log.error("HTTPS: the certificate was not reloaded, the current one stays (%s)", exc)
        else:
            log.info("HTTPS: certificate reloaded from %s", self.config.http.tls_cert)

    async def _run_reload_hooks(self) -> None:
        """Each hook reports its own errors; one that raises is logged and must not end the controller
        (a reload runs inside the TaskGroup that carries the calls)."""
        for hook in self.reload_hooks:
            try:
                await hook()
            except Exception:
                log.exception("reload: %s failed; what was live stays live", getattr(hook, "__qualname__", hook))

    def health(self) -> dict[str, Any]:
        # Several nodes: connected while any node is (it serves calls); degraded while any is not.
        connected = any(node.connected for node in self.nodes)
        every_node = all(node.connected for node in self.nodes)
        flows = self.ivr.status()
        store = self.store.health()
        return {
            # Degraded: no ARI, the flows failed to load at start-up (every call gets the fallback), or the
            # store cannot be written (calls are served; what they write is kept and retried).
            "status": "ok" if every_node and not (flows["errors"] and not flows["live"])
            and store["status"] == "ok" else "degraded",
            "version": __version__,
            "ari_connected": connected,
            "ari_connections": self.stream.connections,
            "nodes": self.nodes.health(),
            "calls_by_node": self.calls.counts_by_node(),
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "started_at": self.started_at,
            "active_calls": len(self.calls.active),
            "calls_by_state": self.calls.counts_by_state(),
            "prompts_ready": self.ivr.prompts_ready,
            "flows": flows,
            "store": store,
            **({"role": "leader"} if self.leadership is not None else {}),
        }

    async def asterisk_status(self) -> dict[str, Any]:
        """What only Asterisk knows: reachable, its version, channel counts (the first node's; with several
        nodes, each node's under `nodes`)."""
        statuses = await asyncio.gather(*(self._node_status(node.ari, node.ami) for node in self.nodes))
        status = dict(statuses[0])
        if len(self.nodes) > 1:
            status["nodes"] = dict(zip(self.nodes.by_name, statuses, strict=True))
        return status

    @staticmethod
    async def _node_status(ari: AriClient, ami: AmiService) -> dict[str, Any]:
        try:
            info = await ari.info()
            status: dict[str, Any] = {"reachable": True, "version": info.get("system", {}).get("version")}
        except AriError as exc:
            status = {"reachable": False, "error": exc.message or f"HTTP {exc.status}"}
            if exc.status == 0:  # no answer at all: no AMI login to wait out as well (AMI logs in when used)
                status["channels"] = None
                return status
        try:
            status["channels"] = await ami.channel_counts()
        except AmiUnavailable:
            status["channels"] = None
        return status

    def routes(self) -> list[web.RouteDef]:
        @public
        async def healthz(request: web.Request) -> web.Response:
            # Public: only what a load balancer or a readiness probe needs. Call counts, flow
            # errors with their paths and the rest are in /api/status (authenticated).
            health = self.health()
            body = {key: health[key] for key in ("status", "ari_connected", "prompts_ready")}
            body["nodes"] = {name: "up" if node["ari_connected"] else "down" for name, node in health["nodes"].items()}
            return web.json_response(body, status=200 if body["ari_connected"] else 503)

        @roles("supervisor", "integration")
        async def status(request: web.Request) -> web.Response:
            return web.json_response({"controller": self.health(), "asterisk": await self.asterisk_status(),
                                      "agents_by_state": self.acd.agents_by_state(),
                                      "queues": {q.name: {"waiting": q.waiting,
                                                          "longest_wait": round(q.longest_wait, 1)}
                                                 for q in self.acd.engine.queues()}})

        routes = self._api_routes(healthz, status)

        @public
        async def openapi(request: web.Request) -> web.Response:
            """The OpenAPI 3 description of this API."""
            return web.json_response(openapi_document(routes))

        return [*routes, web.get("/openapi.json", openapi), *desk_resources.routes()]

    def _api_routes(self, healthz: Any, status: Any) -> list[web.RouteDef]:
        return [
            web.get("/healthz", healthz),
            web.get("/api/status", status),
            *access_resources.routes(self.access, secure_cookies=self.tls is not None),
            *admin_resources.routes(self.admin),
            *calls_resources.routes(self.calls),
            *acd_resources.routes(self.acd, is_live=lambda call_id: call_id in self.calls.active),
            *callback_resources.routes(self.callbacks),
            *ivr_resources.routes(self.ivr),
            *reload_resources.routes(self.reload_everything),
            *report_resources.routes(self.reports, qa_figures=self.qa.report),
            *wfm_resources.routes(self.wfm),
            *campaign_resources.routes(self.campaigns),
            *ami_resources.routes(self.ami, self._is_browser_phone),
            *cti_resources.routes(self.events, self.webhooks, agent_queues=self._agent_queues),
            *metrics_resources.routes(self.metric_sources),
            *desk_resources.api_routes(self.config.softphone, lambda: phone_agents(self.live.current),
                                       self._supervisor_users),
            *recording_resources.routes(self.recordings, self.calls,
                                        lambda agent_id: self.acd.engine.agent(agent_id).current_call,
                                        self._queue_recording_policy),
            *inbox_resources.routes(self.inbox, agent_queues=self._agent_queues,
                                    queue_exists=lambda name: name in self.acd.queue_configs,
                                    call_exists=self.inbox.records.call_exists),
            *fax_resources.routes(self.faxes, dialing=lambda: self.live.current.dialing),
            *message_resources.routes(self.messages),
            *alert_resources.routes(self.alerts),
            *qa_resources.routes(self.qa),
        ]

    async def _close_refused_agents_sockets(self, old: Config, new: Config) -> None:
        """An agent removed or disabled live: the open pages of their users and tokens are closed, with why."""
        for agent_id in self.acd.agents_refused_now(old, new):
            if (refusal := self.acd.agent_request_refusal(agent_id)) is not None:  # else: when their call is done
                await self.access.close_agent_sockets(agent_id, refusal)

    async def _sync_browser_phones(self, old: Config | None = None, new: Config | None = None) -> None:
        """pjsip_webrtc.conf for the enabled agents (`new`: as just changed) and the supervisor and admin users."""
        await self.webrtc_endpoints.sync(phone_agents(new or self.live.current), self._supervisor_users())

    def _is_browser_phone(self, endpoint: str) -> bool:
        """An agent's or supervisor's WebRTC endpoint (`softphone.endpoint`, `softphone.supervisor_endpoint`),
        which the trunk list leaves out."""
        return endpoint in browser_phones(self.config.softphone, self.acd.agent_configs, self._supervisor_users())

    def _supervisor_users(self) -> list[str]:
        """The users who get a supervisor's browser phone (supervisors and admins)."""
        return [str(user["name"]) for user in self.access.user_list() if user["role"] in ("supervisor", "admin")]

    def _close_sockets_of_agent_gone(self, agent_id: str) -> None:
        """A removed or disabled agent finished their call and was logged out: their pages close now."""
        async def close() -> None:
            await self.access.close_agent_sockets(agent_id, self.acd.agent_refusal(agent_id) or "agent refused")
        self.spawn(close())

    def _audit_subject(self, request: web.Request) -> dict[str, Any] | None:
        """An agent's state, for the audit log's before and after of a request on /api/agents/{agent_id}/…"""
        agent_id = request.match_info.get("agent_id")
        if agent_id is None or agent_id not in self.acd.agent_configs:
            return None
        view = acd_resources.agent_json(self.acd, agent_id)
        return {"agent": agent_id, **{key: view.get(key) for key in ("state", "reason", "endpoint")}}

    def _queue_recording_policy(self, call_id: str) -> str | None:
        waiting = self.acd.calls.get(call_id)
        return waiting.queue.recording if waiting is not None and waiting.queue is not None else None

    def _http(self) -> aiohttp.ClientSession:
        assert self.http_client is not None, "the controller is not running"
        return self.http_client

    def _background_services(self) -> list[BackgroundService]:
        """The plugins' timers and pollers: started once the event stream and the store's writer run, and
        cancelled together when the controller stops, before the calls are let go. (The store's writer,
        the CTI queue, webhooks and the queue_log/CDR writer are stopped one by one, in their own order.)"""
        return [self.acd, self.ivr, self.recordings, self.retention, self.access, self.inbox, self.campaigns,
                self.faxes]

    async def run(self) -> None:
        """Start, run until `stop()`, then stop: the calls stay in Asterisk for the next process. A stop during
        start-up (a PostgreSQL store waiting for another controller's schema migration, say) ends it where it is,
        as a crash would, and closes what was opened."""
        self._starting = task = asyncio.current_task()
        try:
            try:
                await self._start_up()
            except asyncio.CancelledError:
                if not self._stop.is_set():
                    raise
                if task is not None:
                    task.uncancel()  # (the stop's own cancellation: the clean-up below is not cancelled)
                log.warning("stopped during start-up: the calls in Asterisk are left there for the next start")
                return
            finally:
                self._starting = None
            await self._serve_until_stopped()
        finally:
            self._tasks = None
            await self._close()
            log.info("controller stopped")

    async def _start_up(self) -> None:
        """Open the store and the services; serve AGI, AMI (compat) and HTTP."""
        await self.store.open()
        await self.events.open()
        await self.access.open(self.config.tokens, self.config.users)
        await self.admin.open(self.config)  # the database's managed sections become current (or the file seeds it)
        await self.compat.open()
        self.ivr.load()
        await self.acd.restore()
        await self.campaigns.load()
        for node in self.nodes:
            node.ari.open()
        await self._sync_browser_phones()  # the agents as the database has them, the users as they are
        self.http_client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self.customers = customers = CustomerDirectory(self.live.current.customers, self.http_client)
        agi_settings = self.config.agi
        self.agi_server = FastAgiServer(header_timeout=agi_settings.header_timeout,
                                        command_timeout=agi_settings.command_timeout,
                                        allowed_peers=agi_settings.allowed_peers,
                                        max_connections=agi_settings.max_connections)
        AgiService(app_name=self.config.ari.app, flow_for_did=self.ivr.flow_for_did,
                   flow_exists=self.ivr.flow_exists, tier_of=customers.tier_of,
                   connected=self.stream.connected.is_set, expect_handover=self.calls.expect_handover,
                   handover_timeout=agi_settings.handover_timeout).install(self.agi_server)
        if self.config.agi.enabled:
            self._agi_listener = await self.agi_server.serve(self.config.agi.listen, self.config.agi.port)
        await asyncio.gather(*(node.ami.connect() for node in self.nodes))
        app = build_app(self.access.authenticate, self.routes(), audit=self.access.audit_request,
                        sockets=self.sockets, audit_subject=self._audit_subject)
        self._http_runner = await start_http(app, self.config.http.listen, self.config.http.port, self.tls)
        if self.ami_server is not None:
            await self.ami_server.serve()

    async def _serve_until_stopped(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            writer = tasks.create_task(self.store.run_writer())
            cti = tasks.create_task(self.events.run())
            streams = [tasks.create_task(node.stream.run()) for node in self.nodes if node.stream is not None]
            for node in self.nodes:
                self.nodes.disconnected(node.name)  # a node that never connects is down after a while
            notifier = tasks.create_task(self.webhooks.run())
            compat = tasks.create_task(self.compat.run())
            background = [tasks.create_task(service.run()) for service in self._background_services()]
            log.info("controller %s running (ARI app %s)", __version__, self.config.ari.app)
            tune_gc_after_start_up()
            await self._stop.wait()
            # Calls stay in Asterisk for the next process, which resumes them (issue 13): stop taking
            # events and decisions, save what is queued, then end the call tasks without them touching
            # Asterisk or the store (their clean-up would hang up legs and close records).
            log.info("stopping: leaving %d live calls in Asterisk for the next process", len(self.calls.active))
            self.calls.detach()
            self.webhooks.stop()  # POSTs in flight finish (a cut one would be sent twice)
            for stream in streams:
                stream.cancel()
            for task in background:
                task.cancel()
            with contextlib.suppress(TimeoutError, StoreError):  # a failing store: close() keeps what is left
                async with asyncio.timeout(STOP_FLUSH_SECONDS):
                    await self.store.flush()
            self.store.freeze()
            for node in self.nodes:
                node.ari.detach()
            for task in list(self._call_tasks):
                task.cancel()
            await asyncio.gather(*self._call_tasks, return_exceptions=True)
            compat.cancel()  # after the calls: their last lines and CDRs are written first
            await asyncio.gather(compat, return_exceptions=True)
            await asyncio.wait({notifier}, timeout=self.webhooks.longest_post + 1)
            notifier.cancel()
            cti.cancel()  # hands the events still queued to the store, committed as it closes
            await asyncio.gather(cti, return_exceptions=True)
            writer.cancel()

    async def _close(self) -> None:
        """Close what `_start_up` opened, all of it or (stopped or failed during start-up) what it got to."""
        try:
            if self._agi_listener is not None:
                self._agi_listener.close()
            for node in self.nodes:
                node.ami.close()
            if self.ami_server is not None:
                self.ami_server.close()
            if self.http_client is not None:
                await self.http_client.close()
            if self._http_runner is not None:
                await self._http_runner.cleanup()
            for node in self.nodes:
                await node.ari.close()
        finally:
            if self.store.is_open:  # whatever failed above, what was written is committed
                await self.store.close()
            if self.leadership is not None:  # given up: a standby takes over at once
                await self.leadership.close()


async def _contained(coro: Coroutine[Any, Any, None]) -> None:
    """A call's task, whose failure is logged and ends that call only: an exception escaping into the
    controller's TaskGroup would cancel every other task, stopping the controller with all its live calls."""
    try:
        await coro
    except Exception:
        log.exception("a call's task failed; the other calls go on")
