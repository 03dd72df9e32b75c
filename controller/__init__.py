"""Asterisk call-center controller: IVR, ACD, call control and CTI over ARI."""

__version__ = "0.1.0"
