"""The on-disk contract of a run folder, written by `mipnerf train` and read by every command.

checkpoints.py  checkpoint files (checksummed, atomic), rotation, newest-good fallback
payload.py      what a checkpoint holds: built (make_payload) and read (read, model_from_checkpoint)
lock.py         RunLock: one trainer per run folder
folder.py       RunFiles: config.yaml, metrics.jsonl, TensorBoard
"""
