"""Apache Kafka, single node in KRaft mode, run from jars fetched once from Maven Central."""

from __future__ import annotations

import base64
import logging
import shutil
import subprocess
import uuid
from importlib import resources
from pathlib import Path

from customer360.addresses import kafka_host_port
from customer360.config import KAFKA_PARTITIONS, Settings
from customer360.kafka_topics import admin_client, ensure_topics
from customer360.services.processes import LocalServer, ManagedProcess, ServiceError, port_in_use

log = logging.getLogger(__name__)

KAFKA_HEAP = "-Xms256m -Xmx768m"
START_TIMEOUT_S = 60.0

LOG4J2_CONFIG = """\
<Configuration status="WARN">
  <Appenders>
    <Console name="STDOUT" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Logger name="kafka" level="INFO"/>
    <Logger name="org.apache.kafka" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Root level="WARN"><AppenderRef ref="STDOUT"/></Root>
  </Loggers>
</Configuration>
"""


# The jar holding kafka.Kafka and kafka.tools.StorageTool; and the cache's list of its jars,
# written last, once Maven has fetched them all.
BROKER_JAR_PREFIX = "kafka_2.13-"
JAR_MANIFEST = ".complete"


def jar_cache_is_complete(jars_dir: Path) -> bool:
    """Whether `jars_dir` holds every jar its manifest lists, the broker's jar among them."""
    try:
        listed = (jars_dir / JAR_MANIFEST).read_text().split()
    except OSError:
        return False
    return any(name.startswith(BROKER_JAR_PREFIX) for name in listed) and all(
        name.endswith(".jar") and (jars_dir / name).is_file() for name in listed
    )


class KafkaService(LocalServer):
    name = "Kafka"
    start_timeout_s = START_TIMEOUT_S
    ready_interval_s = 0.5

    def __init__(self, settings: Settings):
        self.settings = settings
        self.host, self.port = kafka_host_port(settings.kafka_bootstrap)
        self.controller_port = self.port + 1
        self.dir = settings.home / "kafka"
        self.process = ManagedProcess("kafka", settings.home / "run")

    @property
    def jars_dir(self) -> Path:
        return self.settings.kafka_jars_dir

    def ensure_jars(self) -> None:
        """Fetch the broker's jars with Maven once; later starts reuse them.

        The cache is trusted only while every jar its manifest (`.complete`) lists is there and
        the broker's own jar is among them: a cache emptied, half-deleted or left by an older
        version is fetched again instead of failing every start with ClassNotFoundException.
        """
        if jar_cache_is_complete(self.jars_dir):
            return
        mvn = shutil.which("mvn")
        if mvn is None:
            raise ServiceError(
                "Maven (mvn) is needed once to fetch Apache Kafka's jars from Maven Central, "
                "and it is not on PATH. Install it (apt-get install maven) or use "
                "docker-compose.yml."
            )
        if self.jars_dir.exists():
            log.warning("Kafka's jar cache %s is incomplete; fetching it again", self.jars_dir)
        # Absolute: Maven resolves a relative -DoutputDirectory against the POM's folder.
        partial = self.jars_dir.with_name(self.jars_dir.name + ".partial").absolute()
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        log.info("fetching Apache Kafka jars with Maven into %s (once)", self.jars_dir)
        with resources.as_file(resources.files("customer360.services") / "kafka-pom.xml") as pom:
            result = subprocess.run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "-f",
                    str(pom),
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={partial}",
                    "-DincludeScope=runtime",
                ],
                capture_output=True,
                text=True,
            )
        if result.returncode != 0:
            raise ServiceError(
                "Maven could not fetch Apache Kafka's jars:\n"
                + (result.stdout + result.stderr)[-2000:]
            )
        jars = sorted(p.name for p in partial.glob("*.jar"))
        if not any(name.startswith(BROKER_JAR_PREFIX) for name in jars):
            raise ServiceError(
                f"Maven reported success but left no {BROKER_JAR_PREFIX}*.jar in {partial}; "
                "Kafka cannot start without it. Maven's output:\n"
                + (result.stdout + result.stderr)[-2000:]
            )
        (partial / JAR_MANIFEST).write_text("\n".join(jars) + "\n")
        shutil.rmtree(self.jars_dir, ignore_errors=True)
        partial.rename(self.jars_dir)

    def _write_config(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "log4j2.xml").write_text(LOG4J2_CONFIG)
        config = self.dir / "server.properties"
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@{self.host}:{self.controller_port}",
                    f"listeners=PLAINTEXT://{self.host}:{self.port},"
                    f"CONTROLLER://{self.host}:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://{self.host}:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={(self.dir / 'data').resolve()}",
                    f"num.partitions={KAFKA_PARTITIONS}",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=3",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    # Demo data: keep a week, and allow the chaos test's 1 MB messages.
                    "log.retention.hours=168",
                    "message.max.bytes=2097152",
                    "",
                ]
            )
        )
        return config

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise ServiceError(
                "Java 17+ is needed to run Apache Kafka and `java` is not on PATH. "
                "Install it (apt-get install openjdk-17-jre-headless) or use docker-compose.yml."
            )
        return java

    def _format_storage(self, java: str, config: Path) -> None:
        if (self.dir / "data" / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        result = subprocess.run(
            [
                java,
                "-cp",
                f"{self.jars_dir}/*",
                "kafka.tools.StorageTool",
                "format",
                # One argument: a random id may start with "-", which argparse takes for an option.
                f"--cluster-id={cluster_id}",
                "-c",
                str(config),
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise ServiceError(
                "Formatting Kafka's storage failed:\n" + result.stdout + result.stderr
            )

    def start(self) -> bool:
        """Start the broker unless ours already runs. Returns whether it was started now."""
        if self.already_running():
            return False
        self.refuse_ports_in_use(
            (self.port, self.controller_port),
            "Stop it, or point C360_KAFKA_BOOTSTRAP at a free port (Kafka's controller uses "
            "that port + 1).",
        )
        java = self._java()
        self.ensure_jars()
        config = self._write_config()
        self._format_storage(java, config)
        self.process.start(
            [
                java,
                *KAFKA_HEAP.split(),
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.dir / 'log4j2.xml'}",
                "-cp",
                f"{self.jars_dir}/*",
                "kafka.Kafka",
                str(config),
            ]
        )
        self.wait_ready()
        try:
            ensure_topics(self.settings)
        except RuntimeError as exc:
            raise ServiceError(str(exc)) from exc
        return True

    def ready(self) -> bool:
        # A closed port is the common "not yet" case: no client is made for it.
        if not port_in_use(self.host, self.port):
            return False
        try:
            metadata = admin_client(self.settings).list_topics(timeout=2)
            return bool(metadata.brokers)
        except Exception:  # noqa: BLE001 - any failure means "not ready yet"
            return False

    def not_ready_message(self) -> str:
        return (
            f"Kafka at {self.settings.kafka_bootstrap} did not answer a metadata request "
            f"within {self.start_timeout_s:.0f} s."
        )
