#!/bin/bash
# apache/kafka's contract: every KAFKA_* variable is a broker setting (KAFKA_NODE_ID -> node.id;
# "__" stands for "_" and "___" for "-"), with a single-node KRaft default when none is given.
# Storage is formatted on the first start with CLUSTER_ID (a fixed default, as apache/kafka's).
set -euo pipefail
CONFIG=/opt/kafka/config/server.properties
declare -A props=(
  [node.id]=1
  [process.roles]=broker,controller
  [listeners]=PLAINTEXT://:9092,CONTROLLER://:9093
  [advertised.listeners]=PLAINTEXT://localhost:9092
  [controller.listener.names]=CONTROLLER
  [controller.quorum.voters]=1@localhost:9093
  [listener.security.protocol.map]=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
  [log.dirs]=/var/lib/kafka/data
  [offsets.topic.replication.factor]=1
  [transaction.state.log.replication.factor]=1
  [transaction.state.log.min.isr]=1
  [group.initial.rebalance.delay.ms]=0
)
# Variables of the JVM and of this script, not broker settings.
skip=" KAFKA_HEAP_OPTS KAFKA_OPTS KAFKA_JVM_OPTS KAFKA_VERSION KAFKA_HOME "
while IFS='=' read -r name value; do
  case "$name" in KAFKA_*) ;; *) continue ;; esac
  [[ "$skip" == *" $name "* ]] && continue
  key=${name#KAFKA_}
  key=${key,,}
  key=${key//___/-}
  key=${key//__/@}
  key=${key//_/.}
  key=${key//@/_}
  props[$key]=$value
done < <(env)
: > "$CONFIG"
for key in "${!props[@]}"; do printf '%s=%s\n' "$key" "${props[$key]}" >> "$CONFIG"; done
JAVA_OPTS=(${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} ${KAFKA_OPTS:-} -Dlog4j.configuration=file:/opt/kafka/config/log4j.properties)
data=${props[log.dirs]%%,*}
if [ ! -e "$data/meta.properties" ]; then
  java "${JAVA_OPTS[@]}" -cp '/opt/kafka/libs/*' kafka.tools.StorageTool format \
    -t "${CLUSTER_ID:-5L6g3nShT-eMCtK--X86sw}" -c "$CONFIG" --ignore-formatted
fi
exec java "${JAVA_OPTS[@]}" -cp '/opt/kafka/libs/*' kafka.Kafka "$CONFIG"
