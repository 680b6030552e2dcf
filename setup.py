from setuptools import find_packages, setup

setup(
    name="zato-ha",
    version="0.1.0",
    description="High-availability integration server: all-active servers, HAProxy LB, "
    "connector-server lease in Redis",
    # etc/ (config templates, systemd units) is installed as the package zato.etc
    packages=[*find_packages(include=["zato", "zato.*"]), "zato.etc"],
    package_dir={"zato.etc": "etc"},
    package_data={"zato.etc": ["*.conf", "*.cfg", "systemd/*.service"]},
    python_requires=">=3.10",
    install_requires=[
        "gevent>=23",
        "gunicorn[gevent]>=23",  # the gevent worker needs the extra (packaging, from 25)
        "bottle>=0.12",
        "redis[hiredis]>=5",  # hiredis: redis-py parses replies in C (faster outgoing hand-off, docs/benchmarks.md)
        "sqlalchemy>=2.0",
        "pika>=1.3",
        "pyzmq>=25",
        "psycopg[binary]>=3.1",
        "oracledb>=2",
        "setproctitle>=1.3",
        "requests>=2.31",  # outgoing plain HTTP (zato/service/out_http.py), imported by every worker
        "prometheus-client>=0.17",
        "arrow>=1.3",  # services' self.time: Zato's date helpers take Arrow's format tokens
        "configobj>=5.0.9",  # services' self.config: Zato's user-config files, read as Zato reads them
        "cryptography>=42",  # quickstart --tls: private CA and certificates; the LB certificate check
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-timeout", "pytest-xdist>=3.5", "ruff", "requests", "selenium>=4.11", "hypothesis>=6", "mypy>=1.10"],
        # IBM MQ connectors; needs IBM's MQ redistributable client libraries on the machine
        "ibmmq": ["ibmmq>=2"],
    },
    entry_points={"console_scripts": ["zato = zato.cli.main:main"]},
)
