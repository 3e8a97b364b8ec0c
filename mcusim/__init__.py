"""mcusim: a cycle-approximate Cortex-M4 simulator for on-device neural-network training studies.

Layers: `boards` (hardware facts as data) -> `toolchain` (build firmware) -> `firmware` (read the ELF)
-> `emulator` (functional model, Unicorn) + `timing` (cycle model, native hook) + `memory` (budget)
-> `profile`, `cli`.
"""
__version__ = "0.1.0"
