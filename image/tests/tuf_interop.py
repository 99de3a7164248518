"""python-tuf (The Update Framework's reference implementation) against Cairn's repositories.

  tuf_interop.py write REPO FILE NAME    write a repository with python-tuf's Metadata API:
                                         FILE as target NAME, then two root rotations
  tuf_interop.py read REPO ROOT NAME     serve REPO over HTTP and fetch NAME with python-tuf's
                                         ngclient, trusting ROOT; print the target's
                                         sha256, length, custom and the root version as JSON
"""

import hashlib
import http.server
import json
import os
import sys
import tempfile
import threading
from datetime import datetime, timedelta, timezone

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, Root, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer
from tuf.ngclient import Updater


def write(repo, file, name):
    meta = os.path.join(repo, "metadata")
    targets_dir = os.path.join(repo, "targets")
    os.makedirs(meta)
    os.makedirs(targets_dir)
    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=30)
    signers = {role: CryptoSigner.generate_ed25519() for role in ["root", "targets", "snapshot", "timestamp"]}
    root = Metadata(Root(expires=expires, consistent_snapshot=True))
    for role, signer in signers.items():
        root.signed.add_key(signer.public_key, role)
    targets = Metadata(Targets(expires=expires))
    target = TargetFile.from_file(name, file, ["sha256"])
    target.unrecognized_fields["custom"] = {"cairn": {"from": "python-tuf"}}
    targets.signed.targets[name] = target
    snapshot = Metadata(Snapshot(expires=expires))
    snapshot.signed.meta["targets.json"].version = targets.signed.version
    timestamp = Metadata(Timestamp(expires=expires))
    timestamp.signed.snapshot_meta.version = snapshot.signed.version

    ser = JSONSerializer(compact=False)
    root.sign(signers["root"])
    root.to_file(os.path.join(meta, "1.root.json"), ser)
    # Two rotations of the root key: each new root signed by the old and the new key.
    old = signers["root"]
    for version in (2, 3):
        new = CryptoSigner.generate_ed25519()
        root.signed.revoke_key(old.public_key.keyid, "root")
        root.signed.add_key(new.public_key, "root")
        root.signed.version = version
        root.signatures.clear()
        root.sign(old, append=True)
        root.sign(new, append=True)
        root.to_file(os.path.join(meta, f"{version}.root.json"), ser)
        old = new
    targets.sign(signers["targets"])
    targets.to_file(os.path.join(meta, f"{targets.signed.version}.targets.json"), ser)
    snapshot.sign(signers["snapshot"])
    snapshot.to_file(os.path.join(meta, f"{snapshot.signed.version}.snapshot.json"), ser)
    timestamp.sign(signers["timestamp"])
    timestamp.to_file(os.path.join(meta, "timestamp.json"), ser)
    with open(file, "rb") as f:
        data = f.read()
    with open(os.path.join(targets_dir, f"{hashlib.sha256(data).hexdigest()}.{name}"), "wb") as f:
        f.write(data)


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def read(repo, root, name):
    handler = lambda *a, **k: Quiet(*a, directory=repo, **k)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory() as store, tempfile.TemporaryDirectory() as downloads:
        with open(root, "rb") as f:
            trusted = f.read()
        updater = Updater(store, f"{url}/metadata/", downloads, f"{url}/targets/", bootstrap=trusted)
        updater.refresh()
        info = updater.get_targetinfo(name)
        if info is None:
            sys.exit(f"python-tuf: no target {name}")
        path = updater.download_target(info)
        with open(path, "rb") as f:
            data = f.read()
        with open(os.path.join(store, "root.json"), "rb") as f:
            version = json.load(f)["signed"]["version"]
    server.shutdown()
    print(json.dumps({
        "sha256": hashlib.sha256(data).hexdigest(),
        "length": len(data),
        "custom": info.custom,
        "root_version": version,
    }))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "write":
        write(*sys.argv[2:])
    elif len(sys.argv) == 5 and sys.argv[1] == "read":
        read(*sys.argv[2:])
    else:
        sys.exit(__doc__)
