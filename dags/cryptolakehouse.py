# Generated from cryptolake/pipeline.yaml by `make generate` (python -m cryptolake.orchestration.render).
# Do not edit: change the spec and regenerate; tests/orchestration fails when this file drifts.
"""CryptoLakehouse's Airflow DAGs: init, daily, weekly, 5x, 10x, backup, status and, on a cluster, housekeeping
(docs/orchestration.md); a failed run of any of them alerts through the spec's airflow.alerts notifier.

The backend comes from CRYPTOLAKE_DAG_BACKEND (kubernetes: pods and SparkApplications; local: the same
commands as subprocesses of the worker); by default kubernetes inside a cluster, local elsewhere.
"""

import os

from cryptolake import pipeline
from cryptolake.orchestration.dags import backend_from_env, build_dags

SPEC = {'version': 1,
 'groups': {'10x': {'description': 'Market data that moves by the hour (top 1,000 coins, global metrics, '
                                   'sentiment), ten times a weekday.',
                    'schedule': {'days': 'weekdays',
                                 'at': ['10:30',
                                        '11:30',
                                        '12:30',
                                        '13:30',
                                        '14:30',
                                        '15:30',
                                        '16:30',
                                        '17:30',
                                        '18:30',
                                        '19:30']}},
            '5x': {'description': 'Category market figures, five times a weekday.',
                   'schedule': {'days': 'weekdays', 'at': ['09:00', '11:00', '13:00', '15:00', '17:00']}},
            'daily': {'description': 'The top 5,000 coins, the coin and exchange maps and a slice of '
                                     'category members, each weekday.',
                      'schedule': {'days': 'weekdays', 'at': ['08:20']}},
            'weekly': {'description': 'Coin and exchange metadata for new ids, exchange wallets, and Delta '
                                      'maintenance, each Monday.',
                       'schedule': {'days': ['mon'], 'at': ['08:00']}},
            'init': {'description': 'Every extractor once, to bootstrap an empty lake; runs once by itself '
                                    'on a new deployment, then on demand.',
                     'schedule': None}},
 'spark_apps': ['transform', 'load'],
 'post_load_sql': ['CALL meta.refresh_statistics()'],
 'backup': {'schedule': {'days': ['sun'], 'at': ['03:00']}},
 'airflow': {'owner': 'data-platform',
             'api_pool': {'name': 'coinmarketcap_api', 'slots': 1},
             'retries': 2,
             'retry_delay_minutes': 2,
             'max_retry_delay_minutes': 30,
             'timeout_minutes': {'extract': 30, 'spark': 90, 'sql': 10, 'backup': 30, 'status': 10},
             'warehouse_conn_id': 'cryptolake_warehouse',
             'alerts': {'notifier': 'airflow.providers.smtp.notifications.smtp.SmtpNotifier',
                        'args': {'smtp_conn_id': 'cryptolake_smtp',
                                 'from_email': 'cryptolake@localhost',
                                 'to': ['data-platform@example.com'],
                                 'subject': '{{ alert.subject }}',
                                 'html_content': '{{ alert.html }}'},
                        'status_schedule': {'days': 'every day', 'at': ['10:45', '21:45']}}},
 'kubernetes': {'namespace': 'cryptolake-jobs',
                'images': {'extract': 'cryptolake-extract:0.1.0', 'spark': 'cryptolake-spark:0.1.0'},
                'config_map': 'cryptolake-config',
                'secrets': {'extract': 'cryptolake-extract',
                            'transform': 'cryptolake-transform',
                            'load': 'cryptolake-load',
                            'backup': 'cryptolake-backup'},
                'spark_service_account': 'cryptolake-spark',
                'extract_resources': {'cpu': '250m', 'memory': '256Mi', 'memory_limit': '512Mi'},
                'spark_driver': {'cores': 1, 'core_request': '250m', 'memory': '1g', 'memory_overhead': '1g'},
                'spark_executor': {'instances': 1, 'cores': 1, 'core_request': '500m', 'memory': '2g'},
                'finished_retention_hours': 72},
 'extractors': {'key_info': {'priority': 'high',
                             'runs': {'10x': {'credits': 0},
                                      '5x': {'credits': 0},
                                      'daily': {'credits': 0},
                                      'weekly': {'credits': 0},
                                      'init': {'credits': 0}}},
                'crypto_listings_latest': {'priority': 'high',
                                           'runs': {'10x': {'credits': 5, 'params': {'listings_limit': 1000}},
                                                    'daily': {'credits': 25,
                                                              'params': {'listings_limit': 5000}},
                                                    'init': {'credits': 25,
                                                             'params': {'listings_limit': 5000}}}},
                'global_metrics_latest': {'priority': 'high',
                                          'runs': {'10x': {'credits': 1}, 'init': {'credits': 1}}},
                'fear_greed_latest': {'priority': 'high',
                                      'runs': {'10x': {'credits': 1}, 'init': {'credits': 1}}},
                'crypto_categories': {'priority': 'high',
                                      'runs': {'5x': {'credits': 1}, 'init': {'credits': 1}}},
                'crypto_map': {'priority': 'high', 'runs': {'daily': {'credits': 2}, 'init': {'credits': 2}}},
                'exchange_map': {'priority': 'high',
                                 'runs': {'daily': {'credits': 1}, 'init': {'credits': 1}}},
                'crypto_category': {'priority': 'low',
                                    'runs': {'daily': {'credits': 19, 'params': {'category_slice': 10}},
                                             'init': {'credits': 52, 'params': {'category_slice': 25}}}},
                'crypto_info': {'priority': 'high',
                                'runs': {'weekly': {'credits': 2,
                                                    'full_scan_credits': 90,
                                                    'params': {'rescan_days': 28}},
                                         'init': {'credits': 90}}},
                'exchange_info': {'priority': 'high',
                                  'runs': {'weekly': {'credits': 1,
                                                      'full_scan_credits': 7,
                                                      'params': {'rescan_days': 28}},
                                           'init': {'credits': 7}}},
                'exchange_assets': {'priority': 'low',
                                    'runs': {'weekly': {'credits': 80,
                                                        'full_scan_credits': 640,
                                                        'params': {'rescan_days': 28}},
                                             'init': {'credits': 640}}},
                'fear_greed_historical': {'priority': 'high', 'runs': {'init': {'credits': 3}}}}}

# The SparkApplication manifests sit next to dags/ in the repository (manifests/spark).
MANIFEST_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                                             'manifests', 'spark'))

# The spec goes through the same checks as the file it came from.
globals().update(build_dags(pipeline.from_mapping(SPEC, 'cryptolake/pipeline.yaml'), backend_from_env(),
                            manifest_dir=MANIFEST_DIR))
