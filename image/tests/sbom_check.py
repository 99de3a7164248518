"""Checks an SBOM the way a scanner reads it, with CycloneDX's own reference library.

usage: sbom_check.py SBOM.cdx.json
Exit 0 and one summary line when the document is valid CycloneDX 1.5 JSON (strict schema)
and every Debian component carries a package URL a scanner can match: type deb, namespace
debian, the component's name and version, an arch and a distro qualifier. Exit 1 with each
problem on stderr otherwise.
"""
import json
import sys

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL


def main(path):
    text = open(path, encoding="utf-8").read()
    problems = []
    error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(text)
    if error is not None:
        problems.append(f"not valid CycloneDX 1.5: {error}")
    doc = json.loads(text)
    debs = 0
    for c in doc.get("components", []):
        purl = c.get("purl")
        if not purl or not purl.startswith("pkg:deb/"):
            continue
        debs += 1
        p = PackageURL.from_string(purl)
        want = {"type": "deb", "namespace": "debian", "name": c["name"], "version": c["version"]}
        got = {"type": p.type, "namespace": p.namespace, "name": p.name, "version": p.version}
        if got != want:
            problems.append(f"{purl}: parses as {got}, component says {want}")
        for q in ("arch", "distro"):
            if not p.qualifiers.get(q):
                problems.append(f"{purl}: no {q} qualifier")
    if debs == 0:
        problems.append("no Debian package components")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 1
    print(f"valid CycloneDX {doc['specVersion']}, {debs} Debian packages with package URLs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
