"""An FTPS server on pyftpdlib's TLS_FTPHandler for the mastfs tests.

Started by ftps/ftpstest with one argument, a JSON file (mode 0600) that
says where to listen, what to serve and where to log. Sessions read the
disk as the user they log in as (the effective uid is switched around
each file-system call), so file modes mean what they mean for vsftpd.
"""

import json
import logging
import os
import pwd
import sys
import time

from OpenSSL import SSL
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import TLS_FTPHandler
from pyftpdlib.servers import FTPServer


class Authorizer(DummyAuthorizer):
    """DummyAuthorizer that runs each file-system call as a local user."""

    def __init__(self, ids):
        super().__init__()
        self.ids = ids  # FTP user name -> (uid, gid)

    def impersonate_user(self, username, password):
        uid, gid = self.ids[username]
        os.setegid(gid)
        os.seteuid(uid)

    def terminate_impersonation(self, username):
        os.seteuid(0)
        os.setegid(0)


def main():
    with open(sys.argv[1]) as f:
        conf = json.load(f)
    os.setgroups([])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)

    ids = {}
    auth = Authorizer(ids)
    ftp = pwd.getpwnam("ftp")
    auth.add_anonymous(conf["root"], perm="elr")
    ids["anonymous"] = (ftp.pw_uid, ftp.pw_gid)
    acct = pwd.getpwnam(conf["user"])
    auth.add_user(conf["user"], conf["password"], conf["root"], perm="elr")
    ids[conf["user"]] = (acct.pw_uid, acct.pw_gid)

    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    if conf.get("max_tls") == "1.2":
        ctx.set_max_proto_version(SSL.TLS1_2_VERSION)
    ctx.use_certificate_chain_file(conf["cert"])
    ctx.use_privatekey_file(conf["key"])

    commands = open(conf["command_log"], "a", buffering=1)
    xferlog = open(conf["xfer_log"], "a", buffering=1)

    class Handler(TLS_FTPHandler):
        def pre_process_command(self, line, cmd, arg):
            if cmd == "PASS":
                commands.write("PASS <hidden>\n")
            else:
                commands.write(line.strip() + "\n")
            return super().pre_process_command(line, cmd, arg)

        def log_transfer(self, cmd, filename, receive, completed, elapsed, bytes):
            # wu-ftpd xferlog: date, seconds, host, bytes, name, type,
            # action, direction, access mode, user, service, auth, auth
            # user, completion. Spaces in the name are written "_".
            anon = self.username == "anonymous"
            xferlog.write("%s %d %s %d %s b _ %s %s %s ftp 0 * %s\n" % (
                time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime()),
                int(elapsed), self.remote_ip, bytes, filename.replace(" ", "_"),
                "i" if receive else "o", "a" if anon else "r",
                self.password if anon else self.username,
                "c" if completed else "i"))
            return super().log_transfer(cmd, filename, receive, completed, elapsed, bytes)

    Handler.authorizer = auth
    Handler.ssl_context = ctx
    Handler.tls_control_required = True
    Handler.tls_data_required = True
    Handler.banner = "mastfs test stage (%s)" % conf["name"]
    Handler.passive_ports = range(conf["pasv_min"], conf["pasv_max"] + 1)
    if conf.get("pasv_address"):
        Handler.masquerade_address = conf["pasv_address"]
    Handler.use_sendfile = False

    server = FTPServer((conf["host"], conf["port"]), Handler)
    if conf.get("max_clients"):
        # pyftpdlib counts every socket of its loop, the listener included.
        server.max_cons = conf["max_clients"] + 1
    if conf.get("max_per_ip"):
        server.max_cons_per_ip = conf["max_per_ip"]
    server.serve_forever()


if __name__ == "__main__":
    main()
