"""TLS for the MQTT socket (imported only when config broker.tls is true)."""

import binascii
import ssl


def wrap(sock, host, ca):
    """Wrap a connecting non-blocking socket; the handshake runs as it is read and written.

    ca: the broker's CA certificate as PEM text (config broker.ca), checked when given.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca:
        try:
            # config holds PEM text; MicroPython's mbedTLS binding takes DER.
            body = "".join(ln for ln in ca.split("\n") if ln and ln[0] != "-")
            ctx.load_verify_locations(cadata=binascii.a2b_base64(body))
        except ValueError as err:
            sock.close()
            raise OSError("broker.ca is not a usable certificate: %s" % err) from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
