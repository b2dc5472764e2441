"""Run a real single-node Apache Kafka (KRaft) broker from the official jars.

omm never mocks Kafka (docs/design.md §4): locally, and in the test suite, it runs
the genuine broker, fetched once from Maven Central through ``pom.xml`` and
started as a detached JVM whose state lives entirely in one *home* directory::

    <home>/server.properties   rewritten on every start (ports may change)
    <home>/data/               KRaft metadata + topic logs; formatted once, so
                               topics and records survive stop/start
    <home>/logs/server.log     log4j2 output of the broker (see log4j2.xml)
    <home>/logs/kafka.out      JVM stdout/stderr: only what kills the JVM
    <home>/broker.pid          pid of the running broker
    <home>/admin.password      secured brokers only: the admin principal's SCRAM
                               password, generated at the first start (0600)
    <home>/security            how the data was formatted: none | sasl_scram

Secured mode (``security="sasl_scram"``; ``omm broker start`` with
OMM_BROKER_SECURITY=sasl_scram) serves clients on a SASL_PLAINTEXT listener
with SCRAM-SHA-512 only, authorises every request with KRaft's
StandardAuthorizer (no ACL: denied), and makes ``admin`` the one super user.
The admin credential is bootstrapped into the metadata log by
``kafka-storage format --add-scram``. SCRAM cannot authenticate the
controller listener (its credentials live in the metadata that listener
serves), so broker-to-controller traffic uses SASL/PLAIN with the same
generated secret, on loopback. TLS is not offered on the embedded broker:
it only listens on 127.0.0.1.

Startup cost matters because every test session and every ``omm broker
start`` pays it on a 2-core machine, so the JVM runs with a serial GC, C1 only,
and an AppCDS archive (recorded on the first clean shutdown, kept next to the
jars) that roughly halves the time to the first metadata answer.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from connectors.security import KafkaSecurity

__all__ = ["KAFKA_VERSION", "BrokerError", "BrokerStatus", "EmbeddedKafka", "free_port"]

POM = Path(__file__).with_name("pom.xml")
LOG4J2_CONFIG = Path(__file__).with_name("log4j2.xml")

_HOST = "127.0.0.1"
_PID_FILE = "broker.pid"
_LOCK_FILE = ".manager.lock"
_CDS_PENDING_FILE = "cds-pending"
_MARKER_PREFIX = ".omm-complete-"
_START_BANNER = "==== omm: starting broker"
_SECURITY_FILE = "security"
_ADMIN_PASSWORD_FILE = "admin.password"
SECURITY_MODES: tuple[str, ...] = ("none", "sasl_scram")
# The broker's own principal and the operator's: the only super user of a secured broker.
ADMIN_USER = "admin"
SCRAM_MECHANISM: Final = "SCRAM-SHA-512"

# Measured on an idle 2-core box (warm jars, launch to first metadata answer):
# default JVM ~2.8 s, +SerialGC ~2.5 s, +C1 only ~2.1 s, +AppCDS ~1.0-1.3 s.
# The heap stays small because test sessions run two brokers. A dev/test broker is
# I/O-bound and the Python clients are the bottleneck, so C2's peak throughput
# is not worth a second of every start.
_JVM_FLAGS: tuple[str, ...] = (
    "-Xms64m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xshare:auto",
    "-Djava.awt.headless=true",
    # log4j2's own shutdown hook races Kafka's: it stops logging before the
    # broker has said how its controlled shutdown went.
    "-Dlog4j2.shutdownHookEnabled=false",
)


class BrokerError(RuntimeError):
    """The embedded broker could not be fetched, formatted, started or stopped."""


def _pom_kafka_version(pom: Path = POM) -> str:
    """Read ``kafka.version`` from pom.xml so the version has one source of truth."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(pom).getroot().find("m:properties/m:kafka.version", ns)
    if node is None or not (node.text or "").strip():
        raise BrokerError(f"{pom} does not define <kafka.version>")
    return (node.text or "").strip()


KAFKA_VERSION = _pom_kafka_version()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    Inherently racy (another process may take it before the broker binds), but
    the kernel seldom hands the same ephemeral port out again within the second
    a broker needs to bind it, and start() reports a taken port plainly.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class BrokerStatus:
    """A snapshot of one home's broker, as the CLI prints it and tests assert on it."""

    running: bool
    pid: int | None
    bootstrap: str
    home: Path
    log_file: Path
    kafka_version: str
    security: str = "none"

    def describe(self) -> str:
        """One line an operator can act on: is it up, where, and where to look if not."""
        if self.running:
            secured = (
                f", SASL/{SCRAM_MECHANISM} + ACLs (admin password in "
                f"{self.home / _ADMIN_PASSWORD_FILE})"
                if self.security == "sasl_scram"
                else ""
            )
            return (
                f"Apache Kafka {self.kafka_version} (KRaft) running, pid {self.pid}, "
                f"bootstrap {self.bootstrap}{secured}, home {self.home}, log {self.log_file}"
            )
        return (
            f"Apache Kafka {self.kafka_version} (KRaft) not running "
            f"(would serve {self.bootstrap}), home {self.home}, log {self.log_file}"
        )


# Brokers this Python process started, so their exit can be reaped: an
# unreaped child stays a zombie that os.kill(pid, 0) still reports as alive.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process, reaping our own children."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _CHILDREN[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _port_in_use(port: int) -> bool:
    """True if something listens on ``port``; SO_REUSEADDR ignores TIME_WAIT leftovers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((_HOST, port))
        except OSError:
            return True
        return False


def _port_accepts(port: int) -> bool:
    try:
        with socket.create_connection((_HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _kafka_uuid() -> str:
    """A cluster id in Kafka's Uuid format (22 url-safe base64 chars).

    Generated here rather than with ``kafka-storage random-uuid`` to save a JVM
    start; a leading '-' is avoided because the storage tool would read it as
    an option.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not text.startswith("-"):
            return text


def _default_jar_cache(kafka_version: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "omm" / f"kafka-{kafka_version}"


def _find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise BrokerError("no java found (set JAVA_HOME or put java on PATH); Kafka 4 needs 17+")
    return found


class EmbeddedKafka:
    """One broker per home directory; every method is safe to call from any process.

    State is read back from the home (pid file, server.properties) rather than
    kept in this object, so ``omm broker stop`` in one shell stops what ``omm
    broker start`` launched in another.
    """

    def __init__(
        self,
        home: Path,
        port: int = 9092,
        controller_port: int = 9093,
        jar_cache: Path | None = None,
        kafka_version: str = KAFKA_VERSION,
        java: str | None = None,
        security: str = "none",
    ) -> None:
        if port == controller_port:
            raise BrokerError(f"broker and controller port must differ (both {port})")
        if security not in SECURITY_MODES:
            raise BrokerError(f"broker security must be one of {list(SECURITY_MODES)}")
        self.security = security
        # resolve(): two spellings of one home (symlink, relative) must agree on
        # whether its broker runs, since the pid check compares command lines.
        self.home = Path(home).resolve()
        self.port = port
        self.controller_port = controller_port
        self.kafka_version = kafka_version
        self.jar_cache = (jar_cache or _default_jar_cache(kafka_version)).absolute()
        self._java = java

    # ------------------------------------------------------------------ paths

    @property
    def bootstrap(self) -> str:
        """The bootstrap this instance starts the broker on."""
        return f"{_HOST}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "server.log"

    @property
    def _out_file(self) -> Path:
        return self.home / "logs" / "kafka.out"

    @property
    def _pid_file(self) -> Path:
        return self.home / _PID_FILE

    @property
    def _properties_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def java(self) -> str:
        return self._java or _find_java()

    @property
    def admin_password_file(self) -> Path:
        return self.home / _ADMIN_PASSWORD_FILE

    def admin_security(self) -> KafkaSecurity:
        """How the admin principal logs in to this (secured) broker: its password by reference."""
        from connectors.security import KafkaSecurity

        if self.security != "sasl_scram":
            raise BrokerError("this broker runs without security: it has no admin credential")
        return KafkaSecurity(
            protocol="SASL_PLAINTEXT",
            sasl_mechanism=SCRAM_MECHANISM,
            username=ADMIN_USER,
            password_file=str(self.admin_password_file),
        )

    def _admin_password(self) -> str:
        """The admin secret, generated into the home (0600) at the first secured start."""
        import secrets

        from connectors.security import write_secret_file

        path = self.admin_password_file
        if not path.exists():
            # url-safe: the storage tool's --add-scram syntax reserves ',', '[' and ']'
            write_secret_file(path, secrets.token_urlsafe(32))
        return path.read_text(encoding="utf-8").strip()

    def formatted_security(self) -> str | None:
        """The security this home's data was formatted with; None if never formatted."""
        if not (self.data_dir / "meta.properties").exists():
            return None
        try:
            return (self.home / _SECURITY_FILE).read_text().strip()
        except OSError:
            return "none"  # formatted before secured mode existed

    def _check_formatted_security(self) -> None:
        """A home keeps the security it was formatted with; switching needs a fresh home."""
        formatted = self.formatted_security()
        if formatted is not None and formatted != self.security:
            raise BrokerError(
                f"the broker data in {self.data_dir} was formatted with security "
                f"{formatted!r}, not {self.security!r}: start it as it was formatted "
                f"(OMM_BROKER_SECURITY={formatted}) or use another home"
            )

    # ------------------------------------------------------------------- jars

    def _jars_key(self) -> str:
        """Changes whenever the pom or the requested version does, forcing a re-fetch."""
        digest = hashlib.sha256(POM.read_bytes())
        digest.update(self.kafka_version.encode())
        return digest.hexdigest()[:16]

    def ensure_jars(self, progress: Callable[[str], None] | None = None) -> Path:
        """Fetch the broker jars into the cache once; later calls cost one stat().

        Maven writes into a private temporary directory that is renamed into
        place only when complete, so an interrupted download or two concurrent
        first starts can never leave a half-filled classpath, and a pom change
        replaces the old jars instead of mixing two versions on the classpath.
        """
        marker = self.jar_cache / f"{_MARKER_PREFIX}{self._jars_key()}"
        if marker.exists():
            return self.jar_cache
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError(
                "Maven (mvn) is needed once to fetch the Kafka broker jars into "
                f"{self.jar_cache}; install it (or copy that directory, marker file "
                "included, from a machine that has it)"
            )
        if progress is not None:
            progress(
                f"Fetching Apache Kafka {self.kafka_version} broker jars from Maven Central "
                f"into {self.jar_cache} (once)"
            )
        self.jar_cache.parent.mkdir(parents=True, exist_ok=True)
        partial = self.jar_cache.with_name(
            f".{self.jar_cache.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        )
        cmd = [
            mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(POM),
            "dependency:copy-dependencies", "-DincludeScope=runtime",
            f"-DoutputDirectory={partial}", f"-Dkafka.version={self.kafka_version}",
        ]  # fmt: skip
        try:
            result = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1800
            )
            output = (result.stdout + result.stderr).strip()
            jars = list(partial.glob("kafka_2.13-*.jar"))
            if result.returncode != 0 or not jars:
                tail = "\n".join(output.splitlines()[-40:])
                raise BrokerError(
                    f"mvn could not fetch the Kafka {self.kafka_version} jars "
                    f"(exit {result.returncode}):\n{tail}"
                )
            (partial / marker.name).write_text(" ".join(cmd) + "\n")
            if marker.exists():  # a concurrent fetch won the race; keep its copy
                return self.jar_cache
            retired = self.jar_cache.with_name(f"{partial.name}.old")
            with contextlib.suppress(FileNotFoundError):
                self.jar_cache.rename(retired)
            partial.rename(self.jar_cache)
            shutil.rmtree(retired, ignore_errors=True)
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(
                f"mvn did not finish fetching the Kafka jars in {exc.timeout}s"
            ) from exc
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return self.jar_cache

    # ------------------------------------------------------------------ state

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise start/stop on one home across processes (two CLIs, xdist workers)."""
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / _LOCK_FILE).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _is_this_broker(self, pid: int) -> bool:
        """Guard against pid reuse: the pid must be a kafka.Kafka JVM on *this* home."""
        if not Path("/proc/self").exists():  # no procfs (macOS): trust the pid file
            return True
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        args = raw.decode("utf-8", "replace").split("\0")
        return "kafka.Kafka" in args and str(self._properties_file) in args

    def _live_pid(self) -> int | None:
        try:
            pid = int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if _pid_alive(pid) and self._is_this_broker(pid):
            return pid
        return None

    def _running_port(self) -> int:
        """The port the running broker was configured with, which may not be ours."""
        try:
            for line in self._properties_file.read_text().splitlines():
                if line.startswith("advertised.listeners="):
                    return int(line.rsplit(":", 1)[1])
        except (OSError, ValueError):
            pass
        return self.port

    def status(self) -> BrokerStatus:
        """Report from the home directory, so any process sees the same truth."""
        pid = self._live_pid()
        port = self._running_port() if pid is not None else self.port
        return BrokerStatus(
            running=pid is not None,
            pid=pid,
            bootstrap=f"{_HOST}:{port}",
            home=self.home,
            log_file=self.log_file,
            kafka_version=self.kafka_version,
            security=self._running_security() if pid is not None else self.security,
        )

    def _running_security(self) -> str:
        try:
            text = self._properties_file.read_text()
        except OSError:
            return self.security
        return "sasl_scram" if "\nauthorizer.class.name=" in text else "none"

    # ------------------------------------------------------------------ start

    def _server_properties(self) -> str:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            # A static voter set rather than `format --standalone`'s dynamic
            # quorum: the dynamic one records the controller endpoint in the
            # metadata log, and this broker's ports are allowed to change
            # between starts while its data stays.
            "controller.quorum.voters": f"1@{_HOST}:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://{_HOST}:{self.port},CONTROLLER://{_HOST}:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{_HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "3",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        if self.security == "sasl_scram":
            props.update(self._secured_properties(self._admin_password()))
        header = "# Written by connectors/broker/manager.py on every start; edits are lost.\n"
        return header + "".join(f"{key}={value}\n" for key, value in props.items())

    def _secured_properties(self, password: str) -> dict[str, str]:
        client, controller = "SASL_PLAINTEXT", "CONTROLLER"
        scram_login = "org.apache.kafka.common.security.scram.ScramLoginModule"
        plain_login = "org.apache.kafka.common.security.plain.PlainLoginModule"
        return {
            "listeners": (
                f"{client}://{_HOST}:{self.port},{controller}://{_HOST}:{self.controller_port}"
            ),
            "advertised.listeners": f"{client}://{_HOST}:{self.port}",
            "inter.broker.listener.name": client,
            "listener.security.protocol.map": f"{client}:{client},{controller}:{client}",
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
            "sasl.mechanism.controller.protocol": "PLAIN",
            f"listener.name.sasl_plaintext.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": (
                f'{scram_login} required username="{ADMIN_USER}" password="{password}";'
            ),
            "listener.name.controller.plain.sasl.jaas.config": (
                f'{plain_login} required username="{ADMIN_USER}" password="{password}" '
                f'user_{ADMIN_USER}="{password}";'
            ),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{ADMIN_USER}",
            "allow.everyone.if.no.acl.found": "false",
        }

    def _write_properties(self) -> None:
        """Owner-only: a secured broker's file holds the admin secret (JAAS config)."""
        fd = os.open(self._properties_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an older file keeps its mode through O_TRUNC
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(self._server_properties())

    def _jvm_command(self, jars: Path, main: str, *args: str, cds: list[str]) -> list[str]:
        return [
            self.java,
            *_JVM_FLAGS,
            *cds,
            f"-XX:ErrorFile={self.home / 'logs' / 'hs_err_pid%p.log'}",
            f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
            f"-Domm.kafka.log.file={self.log_file}",
            f"-Dkafka.logs.dir={self.log_file.parent}",
            "-cp",
            f"{jars}{os.sep}*",
            main,
            *args,
        ]

    def _format_storage(self, jars: Path) -> None:
        """Format KRaft storage once; meta.properties marks a formatted home."""
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = _kafka_uuid()
        scram: list[str] = []
        secret = ""
        if self.security == "sasl_scram":
            secret = self._admin_password()
            scram = ["--add-scram", f"{SCRAM_MECHANISM}=[name={ADMIN_USER},password={secret}]"]
        for _attempt in range(2):
            cmd = self._jvm_command(
                jars,
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                cluster_id,
                "--config",
                str(self._properties_file),
                *scram,
                cds=self._cds_use_flags(jars),
            )
            try:
                result = subprocess.run(
                    cmd, cwd=self.home, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                    timeout=120,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                # never re-raise it: its text holds the whole command line, secret included
                raise BrokerError(
                    f"formatting the broker's storage in {self.data_dir} took over 120 s "
                    "(a very busy machine?): run `omm broker start` again"
                ) from None
            output = (result.stdout + result.stderr).strip()
            if secret:
                output = output.replace(secret, "***")
            if result.returncode == 0:
                (self.home / _SECURITY_FILE).write_text(self.security + "\n")
                return
            if not self._drop_crashing_cds(jars, output):
                break
        raise BrokerError(
            f"formatting KRaft storage in {self.data_dir} failed "
            f"(exit {result.returncode}):\n{output}"
        )

    def start(self, timeout_s: float = 60.0) -> BrokerStatus:
        """Start the broker detached and return once it answers a metadata request.

        Idempotent: if this home's broker already runs, its status is returned
        as is (with the port it actually runs on, even if this instance was
        created with another). A broker that dies or does not answer in
        ``timeout_s`` is stopped and reported with the tail of its logs.
        """
        jars = self.ensure_jars()
        with self._locked():
            current = self.status()
            if current.running:
                return current
            self._pid_file.unlink(missing_ok=True)
            for port in (self.port, self.controller_port):
                if _port_in_use(port):
                    raise BrokerError(
                        f"port {port} on {_HOST} is already in use; pick other ports "
                        f"(a broker from another home may be running there)"
                    )
            self._check_formatted_security()
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._write_properties()
            try:
                self._format_storage(jars)
                try:
                    self._launch_and_wait(jars, timeout_s)
                except BrokerError:
                    if not self._drop_crashing_cds(jars):
                        raise
                    self._launch_and_wait(jars, timeout_s)
            except OSError as exc:  # java missing or not executable
                raise BrokerError(f"cannot run {self.java}: {exc}") from exc
            return self.status()

    def _launch_and_wait(self, jars: Path, timeout_s: float) -> None:
        proc = self._launch(jars)
        try:
            self._await_ready(proc, timeout_s)
        except BaseException:
            self._terminate(proc.pid, timeout_s=10.0)
            self._pid_file.unlink(missing_ok=True)
            raise

    def _launch(self, jars: Path) -> subprocess.Popen[bytes]:
        cmd = self._jvm_command(
            jars, "kafka.Kafka", str(self._properties_file), cds=self._cds_flags(jars)
        )
        with self._out_file.open("ab") as out:
            out.write(f"\n{_START_BANNER} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode())
            out.flush()
            # Own session: a Ctrl-C in the shell that ran `omm broker start`
            # (or in pytest) must not reach the broker; it is stopped explicitly.
            proc = subprocess.Popen(
                cmd,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _CHILDREN[proc.pid] = proc
        self._pid_file.write_text(f"{proc.pid}\n")
        return proc

    def _await_ready(self, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
        """Wait for a real metadata answer naming an unfenced broker, not just an open port."""
        deadline = time.monotonic() + timeout_s
        last_error = "port not open yet"
        while True:
            if not _pid_alive(proc.pid):
                raise BrokerError(self._failure(f"the broker exited with {proc.returncode}"))
            if _port_accepts(self.port):
                try:
                    if self._answers_metadata():
                        return
                    last_error = "metadata lists no broker yet"
                except Exception as exc:  # kafka-python raises many types while booting
                    last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise BrokerError(
                    self._failure(f"no metadata answer within {timeout_s:g}s ({last_error})")
                )
            time.sleep(0.1)

    def _answers_metadata(self) -> bool:
        from kafka import KafkaAdminClient

        from connectors.security import client_kwargs

        secured = self.admin_security() if self.security == "sasl_scram" else None
        admin = KafkaAdminClient(
            bootstrap_servers=self.bootstrap,
            client_id="omm-broker-manager",
            bootstrap_timeout_ms=3000,
            request_timeout_ms=3000,
            **client_kwargs(secured),
        )
        try:
            brokers = admin.describe_cluster().get("brokers") or []
            return bool(brokers)
        finally:
            admin.close()

    def _failure(self, what: str) -> str:
        parts = [f"Kafka broker in {self.home} failed to start: {what}."]
        # kafka.out accumulates across starts; only this start's section matters.
        out = _tail(self._out_file, 40).rpartition(_START_BANNER)[2].partition("\n")[2].strip()
        if "UnsupportedClassVersionError" in out:
            parts.append(
                f"{self.java} is too old: Apache Kafka {self.kafka_version} needs Java 17+."
            )
        if out:
            parts.append(f"--- {self._out_file} (tail) ---\n{out}")
        log = _tail(self.log_file, 25)
        if log:
            parts.append(f"--- {self.log_file} (tail) ---\n{log}")
        return "\n".join(parts)

    # ------------------------------------------------------------------- stop

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop gracefully (SIGTERM runs Kafka's controlled shutdown); SIGKILL only on timeout.

        Returns whether a broker was running. A graceful stop is what keeps the
        next start quick: the logs need no recovery, and the JVM gets to write
        the AppCDS archive it was recording.
        """
        if not self.home.exists():
            return False
        with self._locked():
            pid = self._live_pid()
            if pid is None:
                self._pid_file.unlink(missing_ok=True)
                self._discard_pending_cds()
                return False
            graceful = self._terminate(pid, timeout_s)
            self._pid_file.unlink(missing_ok=True)
            if graceful:
                self._promote_pending_cds()
            else:
                self._discard_pending_cds()
            return True

    def _terminate(self, pid: int, timeout_s: float) -> bool:
        """SIGTERM, wait, then SIGKILL; True if the process exited on its own."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if self._wait_gone(pid, timeout_s):
            return True
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not self._wait_gone(pid, 10.0):
            raise BrokerError(f"broker pid {pid} survived SIGKILL")
        return False

    @staticmethod
    def _wait_gone(pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while _pid_alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    # ------------------------------------------------------------------- AppCDS

    def _cds_archive(self, jars: Path) -> Path:
        """Where the class-data archive for this JVM + jar set lives.

        Keyed by the java binary and the jar marker because an archive is only
        valid for the exact JVM build and classpath that recorded it.
        """
        java = Path(self.java).resolve()
        digest = hashlib.sha256(str(java).encode())
        with contextlib.suppress(OSError):
            digest.update(str(java.stat().st_mtime_ns).encode())
        digest.update(" ".join(_JVM_FLAGS).encode())
        digest.update(self._jars_key().encode())
        return jars / f"kafka-{digest.hexdigest()[:12]}.jsa"

    def _cds_use_flags(self, jars: Path) -> list[str]:
        archive = self._cds_archive(jars)
        return [f"-XX:SharedArchiveFile={archive}"] if archive.exists() else []

    def _cds_flags(self, jars: Path) -> list[str]:
        """Use the archive if there is one, else record one during this run.

        The recording is written by the JVM on exit to a private file and only
        promoted after a graceful stop: a truncated archive makes the JVM die
        with SIGBUS instead of falling back, so nothing half-written may ever
        be used.
        """
        self._discard_pending_cds()
        use = self._cds_use_flags(jars)
        if use:
            return use
        archive = self._cds_archive(jars)
        pending = archive.with_name(f".{archive.name}.{uuid.uuid4().hex[:8]}.recording")
        (self.home / _CDS_PENDING_FILE).write_text(f"{pending}\n{archive}\n")
        # The recording JVM lists every class it cannot archive as a warning;
        # that is expected and would only bury real errors in kafka.out.
        return [f"-XX:ArchiveClassesAtExit={pending}", "-Xlog:cds=off"]

    def _drop_crashing_cds(self, jars: Path, output: str | None = None) -> bool:
        """Delete an archive the JVM crashed on or rejected; True if a retry is worthwhile.

        An archive can go stale in ways its key does not see (a JDK patched in
        place); the broker must then start without it, not stay broken.
        """
        archive = self._cds_archive(jars)
        out = _tail(self._out_file, 60) if output is None else output
        markers = ("A fatal error has been detected", "SIGBUS", "[cds]", "shared archive")
        if archive.exists() and any(marker in out for marker in markers):
            archive.unlink(missing_ok=True)
            return True
        return False

    def _pending_cds(self) -> tuple[Path, Path] | None:
        try:
            recording, archive = (self.home / _CDS_PENDING_FILE).read_text().split()
        except (OSError, ValueError):
            return None
        return Path(recording), Path(archive)

    def _discard_pending_cds(self) -> None:
        pending = self._pending_cds()
        if pending is not None:
            pending[0].unlink(missing_ok=True)
        (self.home / _CDS_PENDING_FILE).unlink(missing_ok=True)

    def _promote_pending_cds(self) -> None:
        pending = self._pending_cds()
        (self.home / _CDS_PENDING_FILE).unlink(missing_ok=True)
        if pending is None:
            return
        recording, archive = pending
        try:
            complete = recording.exists() and recording.stat().st_size > 0
            if complete and not archive.exists() and self._cds_usable(recording):
                os.replace(recording, archive)
        finally:
            recording.unlink(missing_ok=True)

    def _cds_usable(self, candidate: Path) -> bool:
        """Load the broker's main class through the archive once, in a throwaway JVM.

        Without arguments kafka.Kafka prints its usage and exits 1; a bad
        archive either refuses to map (-Xshare:on) or crashes the JVM.
        """
        cmd = [
            self.java,
            *(f for f in _JVM_FLAGS if f != "-Xshare:auto"),
            "-Xshare:on",
            f"-XX:SharedArchiveFile={candidate}",
            "-XX:-CreateCoredumpOnCrash",
            f"-XX:ErrorFile={self.home / 'logs' / 'hs_err_cds_check_pid%p.log'}",
            "-cp",
            f"{candidate.parent}{os.sep}*",
            "kafka.Kafka",
        ]
        try:
            result = subprocess.run(
                cmd, cwd=self.home, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=60,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return False
        return result.returncode == 1 and "USAGE" in result.stdout + result.stderr


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m connectors.broker.manager fetch|start|stop|status``.

    ``make setup`` needs the jars fetched before anything else is installed or
    configured, so this entry point depends on nothing but this module; the
    user-facing commands are ``omm broker ...``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m connectors.broker.manager",
        description="Fetch, start, stop or inspect the embedded Kafka broker.",
    )
    parser.add_argument("command", choices=["fetch", "start", "stop", "status"])
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("OMM_HOME", ".omm")))
    parser.add_argument("--port", type=int, default=int(os.environ.get("OMM_BROKER_PORT", 9092)))
    parser.add_argument(
        "--controller-port",
        type=int,
        default=int(os.environ.get("OMM_CONTROLLER_PORT", 9093)),
    )
    parser.add_argument(
        "--security",
        choices=SECURITY_MODES,
        default=os.environ.get("OMM_BROKER_SECURITY", "none"),
    )
    args = parser.parse_args(argv)
    broker = EmbeddedKafka(
        args.home / "kafka",
        port=args.port,
        controller_port=args.controller_port,
        security=args.security,
    )
    try:
        if args.command == "fetch":
            print(broker.ensure_jars(progress=print))
        elif args.command == "start":
            broker.ensure_jars(progress=print)
            print(broker.start().describe())
        elif args.command == "stop":
            print("stopped" if broker.stop() else "was not running")
        else:
            print(broker.status().describe())
    except BrokerError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
