"""`dove stack`: the services a small team runs on one machine (PostgreSQL, MLflow, Airflow,
the BentoML service), brought up, checked and stopped as one."""
