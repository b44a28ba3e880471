# Sets one field of every CPU image of an artifact manifest and recomputes
# the manifest's checksum as the packager does (CRC-32C of the compact JSON
# with sorted keys, without the checksum field), so that the runtime reads
# the edited manifest and judges its content.
#   python3 edit-manifest.py manifest.json triple aarch64-unknown-linux-gnu
#   python3 edit-manifest.py manifest.json required_features a,b
import json
import sys


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


path, field, value = sys.argv[1:4]
manifest = json.load(open(path))
for image in manifest["cpu_images"]:
    image[field] = value.split(",") if field == "required_features" else value
manifest.pop("manifest_crc32c")
compact = json.dumps(manifest, separators=(",", ":"), sort_keys=True,
                     ensure_ascii=False)
manifest["manifest_crc32c"] = "%08x" % crc32c(compact.encode())
json.dump(manifest, open(path, "w"), indent=2)
