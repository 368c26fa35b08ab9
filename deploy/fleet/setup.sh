#!/usr/bin/env bash
# The one-shot `fleet-setup` service of docker-compose.yml's `fleet` profile, run as root in the
# Elasticsearch image, after Elastic's "Start a multi-node cluster with Docker Compose":
#   1. a CA and one certificate per node (deploy/fleet/instances.yml) in the certs volume, made
#      once and kept across restarts; the nodes start once they exist (the service's healthcheck);
#   2. once the three nodes form the cluster, the elastic user's password stored in it, so every
#      node (not only its bootstrap password) accepts it; then the service exits 0, which the
#      service instances wait for.
set -euo pipefail

cd /usr/share/elasticsearch
certs=config/certs

if [ -z "${ELASTIC_PASSWORD:-}" ]; then
  echo "set ELASTIC_PASSWORD" >&2
  exit 1
fi

if [ ! -f "$certs/ca.zip" ]; then
  echo "Creating the CA"
  bin/elasticsearch-certutil ca --silent --pem -out "$certs/ca.zip"
  unzip -o "$certs/ca.zip" -d "$certs"
fi
if [ ! -f "$certs/certs.zip" ]; then
  echo "Creating the node certificates"
  bin/elasticsearch-certutil cert --silent --pem --in /fleet/instances.yml \
    --ca-cert "$certs/ca/ca.crt" --ca-key "$certs/ca/ca.key" -out "$certs/certs.zip"
  unzip -o "$certs/certs.zip" -d "$certs"
fi

echo "Setting file permissions"
# The nodes run as uid 1000, gid 0: group root reads the keys, nobody else does.
chown -R root:root "$certs"
find "$certs" -type d -exec chmod 750 {} +
find "$certs" -type f -exec chmod 640 {} +
# The CA certificate is public: the service instances (user nobody) read it to verify the nodes.
chmod 755 "$certs" "$certs/ca"
chmod 644 "$certs/ca/ca.crt"

echo "Waiting for the three nodes to form the cluster"
until curl -fs --cacert "$certs/ca/ca.crt" -u "elastic:$ELASTIC_PASSWORD" \
  "https://es01:9200/_cluster/health?wait_for_status=yellow&wait_for_nodes=3&timeout=5s" \
  >/dev/null; do
  sleep 5
done

echo "Storing the elastic user's password in the cluster"
password=${ELASTIC_PASSWORD//\\/\\\\}
password=${password//\"/\\\"}
until curl -fs -X POST --cacert "$certs/ca/ca.crt" -u "elastic:$ELASTIC_PASSWORD" \
  -H "Content-Type: application/json" -d "{\"password\":\"$password\"}" \
  "https://es01:9200/_security/user/elastic/_password" | grep -q '^{}'; do
  sleep 5
done
echo "All done"
