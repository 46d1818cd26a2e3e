"""consentgate: may I contact this person on this channel now, for this purpose?"""

__version__ = "0.1.0"
