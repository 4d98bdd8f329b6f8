# Keeps the WasmPlugin, VirtualService, DestinationRule and ServiceEntry CRDs of
# istio-crds.yaml, each with only the version xcluster-gen writes; every kept line is
# upstream's, unchanged.
import sys
keep = {"wasmplugins.extensions.istio.io": "v1alpha1",
        "virtualservices.networking.istio.io": "v1",
        "destinationrules.networking.istio.io": "v1",
        "serviceentries.networking.istio.io": "v1"}
docs = open(sys.argv[1]).read().split("\n---\n")
out = []
for doc in docs:
    lines = doc.split("\n")
    name = next((l.split(": ", 1)[1] for l in lines if l.startswith("  name: ")), None)
    if name not in keep:
        continue
    start = lines.index("  versions:") + 1
    head, items, item = lines[:start], [], None
    for line in lines[start:]:
        if line.startswith("  - "):
            item = [line]
            items.append(item)
        elif line.startswith("    ") or line == "":
            item.append(line)
        else:
            raise SystemExit("unexpected line: " + line)
    chosen = [i for i in items if "    name: " + keep[name] in i]
    assert len(chosen) == 1, name
    out.append("\n".join(head + chosen[0]).rstrip("\n"))
print("\n---\n".join(out))
