"""The Python services of the messaging backend, one package with a shared library.

`services.common` holds what every service needs (settings, logging, errors, health,
metrics, database and Redis clients, JWT checks); each service is a subpackage with a
flaskr-style `create_app()` (e.g. `gunicorn 'services.user:create_app()'`).
"""

__version__ = "0.1.0"
