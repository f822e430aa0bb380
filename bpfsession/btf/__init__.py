"""BTF for map formatting: `parse` (the blob -> types), `dump` (typed bytes -> bpftool's
btf_dumper tree, one entry at a time), `encode` (typed input -> bytes). Whole dumps at
batch speed are compiled from the same types by bpfsession.dumpfast.
"""
