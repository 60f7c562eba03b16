"""A USB GSM modem you can run: the AT command set on a pseudo-terminal (`modem.Modem` answers,
`GsmEmulator` does the I/O) and an HTTP control endpoint to make SMS arrive and switch faults."""
from .modem import Fault, Modem
from .runner import GsmEmulator

__all__ = ["Fault", "GsmEmulator", "Modem"]
