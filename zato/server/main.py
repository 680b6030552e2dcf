"""`python -m zato.server.main SERVER_DIR`: run one server in the foreground."""

from __future__ import annotations

import sys
import warnings

from zato.common.errors import EXIT_CONFIG, ConfigError, ZatoError
from zato.common.log import setup_component_logging
from zato.config.settings import load_server_settings

# The gevent workers monkey-patch after fork; the arbiter has imported ssl (via redis) by then,
# which is harmless here because nothing in the arbiter uses SSL with gevent.
warnings.filterwarnings("ignore", message="Monkey-patching ssl after ssl has already been imported")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    foreground = "--fg" in argv
    argv = [a for a in argv if a != "--fg"]
    if len(argv) != 1:
        print("usage: python -m zato.server.main SERVER_DIR [--fg]", file=sys.stderr)
        return 2
    try:
        settings = load_server_settings(argv[0])
        setup_component_logging(settings, "arbiter", stream=foreground)
        from zato.server import metrics

        metrics.prepare(settings)  # before any worker exists or imports prometheus_client
        from zato.server.app import ZatoApplication

        app = ZatoApplication(settings)
    except ConfigError as e:
        print(f"zato: error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except ZatoError as e:
        print(f"zato: error: {e}", file=sys.stderr)
        return 1
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
