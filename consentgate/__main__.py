"""``python -m consentgate``: the same command line as ``consentgate``."""

from consentgate.cli import main

main()
