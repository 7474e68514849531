"""No Django models: the queue's tables are activejob's own (Alembic migrations, applied on
`manage.py migrate`). This module exists so Django sends this app `post_migrate`."""
