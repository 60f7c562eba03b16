"""GSM modem family: sans-IO AT command and SMS PDU codecs (3GPP TS 27.005 / 27.007 / 23.040)."""
