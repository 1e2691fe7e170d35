"""`python -m cryptolake.spark_apps.transform --group g`."""

from cryptolake.spark_apps.transform.main import main

main()
