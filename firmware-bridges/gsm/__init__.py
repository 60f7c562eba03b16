"""GSM modem family: sans-IO codecs for a USB GSM modem receiving SMS.

* :mod:`.at` — AT command / result codec with unsolicited result codes (TS 27.005, TS 27.007).
* :mod:`.pdu` — SMS-DELIVER PDU decoder and encoder (TS 23.040); ``python -m …gsm.pdu decode``.
* :mod:`.gsm7` — GSM 7-bit default alphabet, extension table and septet packing (TS 23.038).
* :mod:`.concat` — reassembly of concatenated messages.
"""
