# Sets one field of an artifact manifest and recomputes the manifest's
# checksum as the packager does (CRC-32C of the compact JSON with sorted
# keys, without the checksum field), so that the runtime reads the edited
# manifest and judges its content. The field is a dotted path; `*` stands
# for every element of a list; the value is JSON.
#   python3 edit-manifest.py manifest.json 'cpu_images.*.triple' '"aarch64-unknown-linux-gnu"'
#   python3 edit-manifest.py manifest.json entries.1.results.1.shape '[1, 32]'
import json
import sys


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def assign(node, keys, value):
    key, rest = keys[0], keys[1:]
    targets = range(len(node)) if key == "*" else [
        int(key) if isinstance(node, list) else key]
    for k in targets:
        if rest:
            assign(node[k], rest, value)
        else:
            node[k] = value


path, field, value = sys.argv[1:4]
manifest = json.load(open(path))
assign(manifest, field.split("."), json.loads(value))
manifest.pop("manifest_crc32c")
compact = json.dumps(manifest, separators=(",", ":"), sort_keys=True,
                     ensure_ascii=False)
manifest["manifest_crc32c"] = "%08x" % crc32c(compact.encode())
json.dump(manifest, open(path, "w"), indent=2)
