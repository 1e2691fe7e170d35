#!/usr/bin/env bash
# The Secrets of a kind deployment (`make deploy` runs this before the charts; docs/kubernetes.md, "kind"):
#   <jobs namespace>: cryptolake-postgresql (password) and one Secret per component, each with its own S3
#     identity (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and only what else it needs: cryptolake-extract
#     (+ CMC_API_KEY), cryptolake-transform, cryptolake-load (+ WAREHOUSE_URL as cryptolake_loader_user),
#     cryptolake-backup (+ WAREHOUSE_URL as cryptolake_backup_user), cryptolake-history, cryptolake-airflow (Airflow's
#     task logs), cryptolake-admin (the store's admin identity, WAREHOUSE_URL as the owner,
#     WAREHOUSE_LOADER_PASSWORD, WAREHOUSE_BACKUP_PASSWORD), which the cryptolake chart then uses
#     (secrets.existingSecrets, postgresql.auth.existingSecret);
#   <airflow namespace>: airflow-metadata, airflow-cryptolake-warehouse (post-load SQL runs as
#     cryptolake_loader_user) and airflow-cryptolake-logs (cryptolake-airflow's S3 identity) (connection),
#     airflow-fernet-key (fernet-key), airflow-api-secret-key (api-secret-key), airflow-jwt-secret (jwt-secret), as
#     charts/values/airflow.yaml names them.
# Random values are made here, on this machine, only for what does not exist yet: a re-run keeps every value (the
# PostgreSQL server keeps the password it was initialised with; Airflow's data stays readable with its fernet key).
# CMC_API_KEY comes from the environment (your key, or the sandbox's on the e2e run); when given it replaces the
# stored one. Values go to kubectl through a pipe, never as arguments, and nothing here prints them.
#
#   charts/kind-secrets.sh <kube context> <jobs namespace> <airflow namespace>
set -euo pipefail
shopt -s inherit_errexit  # a failed kubectl inside $(...) stops the script too: no new password by mistake

if [ $# -ne 3 ]; then
    echo "usage: $0 <kube context> <jobs namespace> <airflow namespace>" >&2
    exit 2
fi
context=$1 jobs_ns=$2 airflow_ns=$3
for tool in kubectl openssl; do
    command -v "$tool" >/dev/null || { echo "$0: $tool is not installed" >&2; exit 1; }
done

# The cryptolake chart's names (the pipeline spec's kubernetes.secrets; charts/cryptolake/values.yaml:
# postgresql.auth, secrets.historyName, secrets.adminName) and Airflow's; the login users of `cryptolake migrate`.
pg_user=cryptolake pg_database=cryptolake airflow_database=airflow
pg_host="cryptolake-postgresql.${jobs_ns}.svc.cluster.local" pg_port=5432
pg_secret=cryptolake-postgresql admin_secret=cryptolake-admin
loader_user=cryptolake_loader_user backup_user=cryptolake_backup_user

kc() { kubectl --context "$context" "$@"; }

# stored <namespace> <secret> <key>: the key's value when the Secret exists and has it, else nothing. A Secret
# that is absent is not an error; any other failure (no cluster, no access) stops the script before it writes.
stored() {
    local encoded
    encoded=$(kc -n "$1" get secret "$2" --ignore-not-found -o "go-template={{with index .data \"$3\"}}{{.}}{{end}}")
    if [ -n "$encoded" ]; then printf '%s' "$encoded" | base64 -d; fi
}

# apply <namespace> <secret> <key> <value> [<key> <value> ...]: create or update the Secret with these keys.
apply() {
    local namespace=$1 name=$2 lines=""
    shift 2
    while [ $# -gt 0 ]; do
        lines+="$1=$2"$'\n'
        shift 2
    done
    kc -n "$namespace" create secret generic "$name" --from-env-file=<(printf '%s' "$lines") \
        --dry-run=client -o yaml | kc apply -f - >/dev/null
    echo "Secret ${namespace}/${name}: applied"
}

# keep <namespace> <secret> <key> <command...>: the stored value, or a new one from the command.
keep() {
    local value
    value=$(stored "$1" "$2" "$3")
    if [ -z "$value" ]; then value=$("${@:4}"); fi
    printf '%s' "$value"
}
fernet_key() { openssl rand -base64 32 | tr '+/' '-_'; }  # 32 random bytes, URL-safe base64 (Fernet)

cmc_key=${CMC_API_KEY:-$(stored "$jobs_ns" cryptolake-extract CMC_API_KEY)}
if [ -z "$cmc_key" ]; then
    echo "$0: CMC_API_KEY is not set and ${jobs_ns}/cryptolake-extract holds none: export CMC_API_KEY (your" \
         "CoinMarketCap key, or the sandbox's) and run again" >&2
    exit 1
fi
# Letters and digits only (hex), so the passwords go into the URLs unescaped.
pg_password=$(keep "$jobs_ns" "$pg_secret" password openssl rand -hex 16)
loader_password=$(keep "$jobs_ns" "$admin_secret" WAREHOUSE_LOADER_PASSWORD openssl rand -hex 16)
backup_password=$(keep "$jobs_ns" "$admin_secret" WAREHOUSE_BACKUP_PASSWORD openssl rand -hex 16)
fernet=$(keep "$airflow_ns" airflow-fernet-key fernet-key fernet_key)
api_secret=$(keep "$airflow_ns" airflow-api-secret-key api-secret-key openssl rand -hex 32)
jwt_secret=$(keep "$airflow_ns" airflow-jwt-secret jwt-secret openssl rand -hex 32)
url() { printf 'postgresql+psycopg2://%s:%s@%s:%s/%s' "$1" "$2" "$pg_host" "$pg_port" "$3"; }
# Each component's S3 identity: its Secret's name as the access key id, a random secret key.
components=(cryptolake-extract cryptolake-transform cryptolake-load cryptolake-backup cryptolake-history
            cryptolake-airflow "$admin_secret")
declare -A s3_id s3_key
for name in "${components[@]}"; do
    s3_id[$name]=$(keep "$jobs_ns" "$name" AWS_ACCESS_KEY_ID echo "$name")
    s3_key[$name]=$(keep "$jobs_ns" "$name" AWS_SECRET_ACCESS_KEY openssl rand -hex 20)
done
# component <secret> [<key> <value> ...]: the component's Secret, its S3 identity and these keys.
component() {
    local name=$1
    shift
    apply "$jobs_ns" "$name" AWS_ACCESS_KEY_ID "${s3_id[$name]}" AWS_SECRET_ACCESS_KEY "${s3_key[$name]}" "$@"
}

apply "$jobs_ns" "$pg_secret" password "$pg_password"
component cryptolake-extract CMC_API_KEY "$cmc_key"
component cryptolake-transform
component cryptolake-load WAREHOUSE_URL "$(url "$loader_user" "$loader_password" "$pg_database")"
component cryptolake-backup WAREHOUSE_URL "$(url "$backup_user" "$backup_password" "$pg_database")"
component cryptolake-history
component cryptolake-airflow
component "$admin_secret" WAREHOUSE_URL "$(url "$pg_user" "$pg_password" "$pg_database")" \
    WAREHOUSE_LOADER_PASSWORD "$loader_password" WAREHOUSE_BACKUP_PASSWORD "$backup_password"
apply "$airflow_ns" airflow-metadata connection "$(url "$pg_user" "$pg_password" "$airflow_database")"
apply "$airflow_ns" airflow-cryptolake-warehouse connection \
    "postgres://${loader_user}:${loader_password}@${pg_host}:${pg_port}/${pg_database}"
# Airflow's task logs go to the lake's bucket (config.logging of charts/values/airflow.yaml) through this
# connection, with Airflow's own S3 identity (it may write airflow-logs/ only).
s3_endpoint="http://cryptolake-seaweedfs.${jobs_ns}.svc.cluster.local:8333"
apply "$airflow_ns" airflow-cryptolake-logs connection "{\"conn_type\": \"aws\", \"login\": \"${s3_id[cryptolake-airflow]}\",\
 \"password\": \"${s3_key[cryptolake-airflow]}\", \"extra\": {\"endpoint_url\": \"${s3_endpoint}\", \"region_name\": \"us-east-1\"}}"
apply "$airflow_ns" airflow-fernet-key fernet-key "$fernet"
apply "$airflow_ns" airflow-api-secret-key api-secret-key "$api_secret"
apply "$airflow_ns" airflow-jwt-secret jwt-secret "$jwt_secret"
