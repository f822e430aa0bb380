"""The Textual session browser started by `bpfsession tui`."""
