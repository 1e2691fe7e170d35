"""`python -m cryptolake.spark_apps.load --group g`."""

from cryptolake.spark_apps.load.main import main

main()
