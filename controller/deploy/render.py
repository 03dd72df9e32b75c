"""The Asterisk snippets the controller needs, rendered with a deployment's values.

`ccctl asterisk-conf render --out DIR` writes them for a PBX the project did not install; the
sandbox's own files (asterisk-conf/ and dialplans/ccc-inbound.conf) are the same templates
rendered with the demo values, and a test keeps them identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import urlparse

from controller.config import Config

#: snippet -> (where it goes on a PBX, where the sandbox keeps it in this repository)
SNIPPETS: dict[str, tuple[str, str]] = {
    "ari.conf": ("/etc/asterisk/ari.conf (merge the user section)", "asterisk-conf"),
    "http.conf": ("/etc/asterisk/http.conf", "asterisk-conf"),
    "manager.conf": ("/etc/asterisk/manager.conf (merge the user section)", "asterisk-conf"),
    "queues.conf": ("/etc/asterisk/queues.conf (add the ccc-fallback queue)", "asterisk-conf"),
    "voicemail.conf": ("/etc/asterisk/voicemail.conf (add the [ccc] context)", "asterisk-conf"),
    "stasis.conf": ("/etc/asterisk/stasis.conf (merge [declined_message_types]; restart Asterisk)", "asterisk-conf"),
    "cdr.conf": ("/etc/asterisk/cdr.conf (unless the site keeps Asterisk's own CDRs)", "asterisk-conf"),
    "ccc-inbound.conf": ("/etc/asterisk/dialplans/ccc-inbound.conf, with "
                         '#include "dialplans/*.conf" in extensions.conf', "dialplans"),
}


@dataclass(frozen=True)
class SnippetValues:
    app: str = "ccc"
    ari_user: str = "ccc"
    ari_password: str = "ccc-demo-ari"
    http_bind: str = "127.0.0.1"
    http_port: int = 8088
    # http.conf's TLS server (the browser phones' wss://), "" for none; the demo's on the loopback.
    http_tls_bind: str = "127.0.0.1:8089"
    ami_user: str = "ccc"
    ami_secret: str = "ccc-demo-ami"
    ami_bind: str = "127.0.0.1"
    ami_port: int = 5038
    ami_permit: str = "127.0.0.1/255.255.255.255"
    guard_ami_user: str = "ccc-guard"
    guard_ami_secret: str = "ccc-demo-guard"
    guard_ari_user: str = "ccc-guard"
    guard_ari_password: str = "ccc-demo-guard-ari"
    fallback_queue_timeout: int = 60
    fallback_members: tuple[str, ...] = tuple(f"PJSIP/800{n}" for n in range(1, 6))

    @classmethod
    def from_config(cls, config: Config, phones: list[str] | None = None) -> SnippetValues:
        ari = urlparse(config.ari.url)
        members = tuple(config.asterisk.phone_dial.replace("{endpoint}", phone) for phone in phones) if phones \
            else cls.fallback_members
        return cls(app=config.ari.app, ari_user=config.ari.user, ari_password=config.ari.password,
                   http_bind=ari.hostname or "127.0.0.1", http_port=ari.port or 8088,
                   http_tls_bind=tls_bind(config), ami_user=config.ami.user,
                   ami_secret=config.ami.secret, ami_bind=config.ami.host, ami_port=config.ami.port,
                   guard_ami_user=config.guard.ami_user, guard_ami_secret=config.guard.ami_secret,
                   guard_ari_user=config.guard.ari_user or config.ari.user,
                   guard_ari_password=config.guard.ari_password or config.ari.password,
                   fallback_members=members)


def tls_bind(config: Config) -> str:
    """Where http.conf's TLS server listens: on every address, at the port of a wss:// softphone.websocket_url
    (the agents' browsers reach it); "" (no TLS) otherwise."""
    url = urlparse(config.softphone.websocket_url)
    return f"0.0.0.0:{url.port or 443}" if config.softphone.enabled and url.scheme == "wss" else ""


def _http_tls(bind: str) -> str:
    """http.conf's TLS lines: on `bind`, or commented out (to fill in) when there is none."""
    lines = ["tlsenable = yes", f"tlsbindaddr = {bind or '0.0.0.0:8089'}",
             "tlscertfile = /etc/asterisk/keys/asterisk.crt", "tlsprivatekey = /etc/asterisk/keys/asterisk.key"]
    return "\n".join(lines if bind else [f";{line}" for line in lines])


def render(name: str, values: SnippetValues) -> str:
    template = resources.files("controller.deploy").joinpath("templates", name).read_text(encoding="utf-8")
    replacements = {
        "APP": values.app, "ARI_USER": values.ari_user, "ARI_PASSWORD": values.ari_password,
        "HTTP_BIND": values.http_bind, "HTTP_PORT": str(values.http_port), "HTTP_TLS": _http_tls(values.http_tls_bind),
        "AMI_USER": values.ami_user,
        "AMI_SECRET": values.ami_secret, "AMI_BIND": values.ami_bind, "AMI_PORT": str(values.ami_port),
        "AMI_PERMIT": values.ami_permit, "GUARD_AMI_USER": values.guard_ami_user,
        "GUARD_AMI_SECRET": values.guard_ami_secret, "GUARD_ARI_USER": values.guard_ari_user,
        "GUARD_ARI_PASSWORD": values.guard_ari_password, "FALLBACK_QUEUE_TIMEOUT": str(values.fallback_queue_timeout),
        "FALLBACK_MEMBERS": "\n".join(f"member => {member}" for member in values.fallback_members),
    }
    for key, value in replacements.items():
        template = template.replace(f"@@{key}@@", value)
    return template


def render_all(values: SnippetValues) -> dict[str, str]:
    return {name: render(name, values) for name in SNIPPETS}


def write_snippets(out: Path, values: SnippetValues, *, repository_layout: bool = False) -> list[Path]:
    """Write every snippet into `out` (or into asterisk-conf/ and dialplans/ under it)."""
    written = []
    for name, text in render_all(values).items():
        target_dir = out / SNIPPETS[name][1] if repository_layout else out
        target_dir.mkdir(parents=True, exist_ok=True)
        path = target_dir / name
        path.write_text(text, encoding="utf-8")
        path.chmod(0o640)  # they hold credentials
        written.append(path)
    if not repository_layout:
        guide = ["Where each file goes on the PBX:", ""]
        guide += [f"  {name:<18} -> {where}" for name, (where, _) in SNIPPETS.items()]
        guide += ["", "Then: asterisk -rx 'core reload' (or restart), and run `ccctl doctor`.", ""]
        (out / "WHERE-THESE-GO.txt").write_text("\n".join(guide), encoding="utf-8")
    return written


def render_service_unit(venv: str = "/opt/ccc/venv", config: str = "/etc/ccc/controller.yaml",
                        unit: str = "ccc-controller") -> str:
    """A systemd unit (ccc-controller or ccc-guard), with the virtual environment and configuration
    file of this install."""
    template = resources.files("controller.deploy").joinpath("templates", f"{unit}.service")
    return template.read_text(encoding="utf-8").replace("@@VENV@@", venv).replace("@@CONFIG@@", config)


def render_node_trunks(config: Config, node: str) -> dict[str, str]:
    """What node `node` needs to reach the other nodes' phones and to take their calls to its own phones
    (README "Several Asterisk servers"): a PJSIP trunk `ccc-node-<other>` per other node (identified by
    its address) and the `ccc-from-nodes` context that dials the phone a trunk call names. Returns
    {"pjsip.conf": ..., "ccc-nodes.conf": ...} (the second goes with the dialplans)."""
    from controller.nodes import TRUNK_PREFIX

    names = [settings.name for settings in config.asterisk_nodes]
    if node not in names:
        raise ValueError(f"no node {node!r} in the configuration (nodes: {', '.join(names)})")
    sections = [f"; Trunks from node {node} to the other nodes (ccctl asterisk-conf nodes --node {node})."]
    for other in config.asterisk_nodes:
        if other.name == node:
            continue
        name, host = f"{TRUNK_PREFIX}{other.name}", other.sip_address.rpartition(":")[0] or other.sip_address
        sections.append(
            f"[{name}]\ntype = aor\ncontact = sip:{other.sip_address}\nqualify_frequency = 0\n\n"
            f"[{name}]\ntype = endpoint\ncontext = ccc-from-nodes\ndisallow = all\nallow = ulaw,alaw,gsm\n"
            f"aors = {name}\ndirect_media = no\nrtp_symmetric = yes\n\n"
            f"[{name}]\ntype = identify\nendpoint = {name}\nmatch = {host}\n")
    dialplan = (
        f"; Calls from the other nodes to a phone on node {node}: the request's user is the phone's endpoint.\n"
        "[ccc-from-nodes]\n"
        "exten => _[0-9A-Za-z]!,1,NoOp(call from another node to phone ${EXTEN})\n"
        " same => n,Dial(PJSIP/${EXTEN},,)\n"
        " same => n,Hangup()\n")
    return {"pjsip.conf": "\n".join(sections), "ccc-nodes.conf": dialplan}
