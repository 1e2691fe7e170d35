#!/bin/bash
# Entrypoint of the cryptolake-spark image. Spark on Kubernetes (the Spark Operator's spark-submit) creates the
# driver pod with the arguments `driver <spark-submit options> <app> <app args>` and each executor pod with
# `executor`, and passes everything else as environment variables; any other command runs as given (the History
# Server, `cryptolake migrate`, a shell). tini is PID 1 of drivers and executors so the Python workers they fork are
# reaped. The image has a passwd entry for its user (185), so no name has to be faked for Hadoop's user lookup.
set -euo pipefail

case "${1-}" in
    driver)
        shift
        # The driver runs in client mode inside its pod (cluster mode here would submit yet another driver), bound
        # to the pod address Spark gives it, which the executors also get to reach it.
        exec /usr/bin/tini -s -- "$SPARK_HOME/bin/spark-submit" \
            --conf "spark.driver.bindAddress=$SPARK_DRIVER_BIND_ADDRESS" \
            --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=$SPARK_DRIVER_BIND_ADDRESS" \
            --deploy-mode client "$@"
        ;;
    executor)
        shift
        # The executor's JVM options arrive one per SPARK_JAVA_OPT_<n> variable, its classpath additions in
        # SPARK_CLASSPATH (spark.executor.extraClassPath); the configuration directories come first.
        java_opts=()
        for name in $(compgen -v SPARK_JAVA_OPT_ | sort -t_ -k4 -n); do
            java_opts+=("${!name}")
        done
        classpath="${SPARK_CONF_DIR:-$SPARK_HOME/conf}${HADOOP_CONF_DIR:+:$HADOOP_CONF_DIR}:$SPARK_HOME/jars/*"
        classpath+="${SPARK_CLASSPATH:+:$SPARK_CLASSPATH}${SPARK_EXTRA_CLASSPATH:+:$SPARK_EXTRA_CLASSPATH}:$PWD"
        exec /usr/bin/tini -s -- java "${java_opts[@]}" \
            -Xms"$SPARK_EXECUTOR_MEMORY" -Xmx"$SPARK_EXECUTOR_MEMORY" \
            -cp "$classpath" org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
            --driver-url "$SPARK_DRIVER_URL" \
            --executor-id "$SPARK_EXECUTOR_ID" \
            --cores "$SPARK_EXECUTOR_CORES" \
            --app-id "$SPARK_APPLICATION_ID" \
            --hostname "$SPARK_EXECUTOR_POD_IP" \
            --resourceProfileId "$SPARK_RESOURCE_PROFILE_ID" \
            --podName "$SPARK_EXECUTOR_POD_NAME"
        ;;
    *)
        exec "$@"
        ;;
esac
