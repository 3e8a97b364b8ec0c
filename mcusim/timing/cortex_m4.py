"""Cortex-M4 instruction timing, as data (REFERENCE.md section 2; ARM Cortex-M4 TRM "Processor
instructions", Cortex-M3 TRM "Load/store timings"). All counts are at zero wait states; the flash
and its ART accelerator are modelled separately (timing/art.py).

`instruction_cost` turns one capstone-decoded instruction (plus the one before it in program order)
into a static cost and a dynamic penalty paid only when a conditional branch is taken.
"""
from __future__ import annotations

from dataclasses import dataclass

from capstone import arm

# Named parameters: the TRM documents ranges, not values. Keep each in one place.
# P, the pipeline refill after a taken branch (TRM: 1 to 3 "depending on the alignment and width of the
# target instruction, and whether the processor manages to speculate the address early"). The core
# forwards some branches: their target fetch is issued from the decode stage, a cycle before the branch
# reaches execute (Cortex-M3 TRM "Branch target forwarding" and the ETM chapter's table "Branches and
# stages evaluated by the processor"; the M4 shares the integer pipeline): B <imm> (16 and 32 bit,
# conditional or not, speculatively), BL, and BX LR / BLX LR / MOV PC, LR unless the instruction just
# before writes LR. Every other PC write (CBZ/CBNZ, BX/BLX Rm, LDR PC, POP/LDM PC, TBB/TBH, ADD/MOV PC)
# issues its target from execute. With a zero-wait-state fetch (address phase, then data phase) a target
# issued from execute reaches execute two cycles later, one issued from decode one cycle later.
BRANCH_REFILL = 2        # target issued from the execute stage
BRANCH_REFILL_FORWARDED = BRANCH_REFILL - 1   # target issued from the decode stage
DIVIDE_CYCLES = 7        # SDIV/UDIV: 2 to 12 with early termination; the middle of the range
UNALIGNED_TARGET = 1     # taken branch to a 32-bit instruction at an address 2 mod 4
# A PC-relative (literal) load reads the code memory the fetch unit is reading: "LDR Rx,[PC,#imm] might
# add a cycle because of contention with the fetch unit" (Cortex-M3 TRM, "Load/store timings", the list
# REFERENCE.md section 2 cites for load pipelining). Charged on every literal load (LDR and VLDR).
LITERAL_CONTENTION = 1
# FPU result latency (Cortex-M4 TRM, FPU chapter, instruction throughput and latency): floating-point
# arithmetic (add, subtract, multiply, divide, square root, every multiply-accumulate form, conversions)
# takes one cycle longer when the next instruction consumes its result; a multiply-accumulate reads its
# addend a cycle later, so a result that is only the next multiply-accumulate's addend is forwarded free.
# GCC's cortex-m4-fpu.md agrees (latency 2 for fadds/fmuls/f_cvt, 4 after 3 for fmacs, 15 after 14 for
# fdivs; define_bypass into the fmacs addend); a published lab measurement: 200 independent VADD.F32 take
# 201 cycles, 200 dependent 401. VABS/VNEG/VCMP/VMOV results are ready for the next instruction.
FP_RESULT_STALL = 1
FP_LATE_RESULT = frozenset("vadd vsub vmul vnmul vdiv vsqrt vmla vmls vnmla vnmls vfma vfms vfnma vfnms "
                           "vcvt vcvtr vcvtb vcvtt".split())

CC_ALWAYS = arm.ARM_CC_AL

# Base cost per instruction class; "N" means 1 + number of registers transferred.
CLASS_CYCLES = {
    "alu": 1, "mul": 1, "dsp": 1, "div": DIVIDE_CYCLES, "it": 1, "nop": 1,
    "load": 2, "store": 2, "load_dual": 3, "store_dual": 3, "load_multi": "N", "store_multi": "N",
    "branch": 1, "table_branch": 2,
    "fp": 1, "fp_mac": 3, "fp_div": 14, "fp_load": 2, "fp_store": 2, "fp_multi": "N",
    "fp_move_core": 2, "fp_move": 1,
}

_NAMES = {
    "mul": "mul mla mls smull umull smlal umlal smulbb smulbt smultb smultt smulwb smulwt smmul smmla smmls",
    "dsp": ("smlad smladx smlsd smlsdx smuad smuadx smusd smusdx smlabb smlabt smlatb smlatt smlawb smlawt "
            "smlald smlaldx smlsld smlsldx smlalbb smlalbt smlaltb smlaltt umaal qadd qsub qdadd qdsub "
            "sadd16 sadd8 ssub16 ssub8 uadd16 uadd8 usub16 usub8 qadd16 qadd8 qsub16 qsub8 uqadd16 "
            "uqadd8 uqsub16 uqsub8 shadd16 shadd8 shsub16 shsub8 uhadd16 uhadd8 uhsub16 uhsub8 sasx "
            "ssax uasx usax qasx qsax uqasx uqsax shasx shsax uhasx uhsax sel usad8 usada8 ssat16 "
            "usat16 sxtb16 uxtb16 sxtab16 uxtab16 pkhbt pkhtb"),
    "div": "sdiv udiv",
    "it": "it",
    "nop": "nop hint yield wfe wfi sev dmb dsb isb",
    "load": "ldr ldrb ldrh ldrsb ldrsh ldrt ldrbt ldrht ldrsbt ldrsht ldrex ldrexb ldrexh",
    "store": "str strb strh strt strbt strht strex strexb strexh",
    "load_dual": "ldrd", "store_dual": "strd",
    "load_multi": "ldm ldmdb pop", "store_multi": "stm stmdb push",
    "branch": "b bl bx blx cbz cbnz",
    "table_branch": "tbb tbh",
    "fp_mac": "vmla vmls vnmla vnmls vfma vfms vfnma vfnms",
    "fp_div": "vdiv vsqrt",
    "fp_load": "vldr", "fp_store": "vstr",
    "fp_multi": "vldmia vldmdb vstmia vstmdb vpush vpop vldm vstm",
    "fp_move": "vmrs vmsr",
    "fp": "vadd vsub vmul vnmul vabs vneg vcmp vcmpe vcvt vcvtr vcvta vcvtn vcvtp vcvtm vrinta vrintn "
          "vrintp vrintm vrintx vrintz vrintr vselge vselgt vseleq vselvs vmaxnm vminnm",
}
CLASS_OF = {name: cls for cls, names in _NAMES.items() for name in names.split()}

SINGLE_LOADS = {"load", "fp_load"}
SINGLE_STORES = {"store", "fp_store"}


@dataclass(frozen=True)
class InsnCost:
    static: int          # cycles charged whenever the instruction is reached
    taken: int           # extra cycles when this (conditional) instruction transfers control
    klass: str


def classify(insn) -> str:
    name = insn.insn_name()
    if name == "vmov":
        ops = insn.operands
        core = any(o.type == arm.ARM_OP_REG and _is_core(o.reg) for o in ops)
        return "fp_move_core" if core else "fp_move"
    if name.startswith("v"):
        return CLASS_OF.get(name, "fp")
    return CLASS_OF.get(name, "alu")


def _is_core(reg: int) -> bool:
    return arm.ARM_REG_R0 <= reg <= arm.ARM_REG_R12 or reg in (arm.ARM_REG_SP, arm.ARM_REG_LR, arm.ARM_REG_PC)


def writes_pc(insn) -> bool:
    if insn.insn_name() in ("b", "bl", "bx", "blx", "cbz", "cbnz", "tbb", "tbh"):
        return True
    if arm.ARM_REG_PC in insn.regs_access()[1]:
        return True
    ops = insn.operands
    if classify(insn) in ("load_multi", "load"):      # pop {.., pc}, ldm {.., pc}, ldr pc, [..]
        return any(o.type == arm.ARM_OP_REG and o.reg == arm.ARM_REG_PC for o in ops)
    return bool(ops) and ops[0].type == arm.ARM_OP_REG and ops[0].reg == arm.ARM_REG_PC and \
        classify(insn) == "alu" and insn.insn_name() not in ("cmp", "cmn", "tst", "teq")


def _address_regs(insn) -> set[int]:
    regs = set()
    for o in insn.operands:
        if o.type == arm.ARM_OP_MEM:
            regs.update(r for r in (o.mem.base, o.mem.index) if r)
    return regs


def _register_count(insn) -> int:
    n = 0
    for o in insn.operands:
        if o.type == arm.ARM_OP_REG:
            n += 2 if arm.ARM_REG_D0 <= o.reg <= arm.ARM_REG_D31 else 1
    if insn.insn_name() in ("ldm", "ldmdb", "stm", "stmdb", "vldmia", "vldmdb", "vstmia", "vstmdb"):
        n -= 1        # the first register operand is the base address
    return n


def _single_fp_registers(regs) -> set[int]:
    """Capstone S/D register ids as the set of single-precision registers they cover (D<n> = S<2n>, S<2n+1>)."""
    out = set()
    for r in regs:
        if arm.ARM_REG_S0 <= r <= arm.ARM_REG_S31:
            out.add(r - arm.ARM_REG_S0)
        elif arm.ARM_REG_D0 <= r <= arm.ARM_REG_D15:
            out.update((2 * (r - arm.ARM_REG_D0), 2 * (r - arm.ARM_REG_D0) + 1))
    return out


def _fp_inputs(insn) -> set[int]:
    """Single-precision registers `insn` reads. Capstone leaves the register list of VSTM out of its
    read set, so a store's register operands count as read."""
    reads = set(insn.regs_access()[0])
    if classify(insn) in ("fp_multi", "fp_store") and insn.insn_name() not in ("vldmia", "vldmdb", "vldm", "vpop"):
        reads.update(o.reg for o in insn.operands if o.type == arm.ARM_OP_REG)
    return _single_fp_registers(reads)


def fp_result_stall(insn, prev) -> int:
    """FP_RESULT_STALL when `prev` is FPU arithmetic whose result `insn` consumes, except as the addend
    of a multiply-accumulate (forwarded)."""
    if prev is None or prev.insn_name() not in FP_LATE_RESULT:
        return 0
    consumed = _fp_inputs(insn) & _single_fp_registers(prev.regs_access()[1])
    if classify(insn) == "fp_mac":
        addend, multiplicands = insn.operands[0].reg, (insn.operands[1].reg, insn.operands[2].reg)
        consumed -= _single_fp_registers([addend]) - _single_fp_registers(multiplicands)
    return FP_RESULT_STALL if consumed else 0


def is_literal_load(insn) -> bool:
    return any(o.type == arm.ARM_OP_MEM and o.mem.base == arm.ARM_REG_PC for o in insn.operands)


def _is_register_offset(insn) -> bool:
    return any(o.type == arm.ARM_OP_MEM and o.mem.index for o in insn.operands)


def instruction_cost(insn, prev) -> InsnCost:
    """Cost of `insn` given the instruction before it in program order (None at a block start)."""
    klass = classify(insn)
    base = CLASS_CYCLES[klass]
    cost = 1 + _register_count(insn) if base == "N" else base
    prev_class = classify(prev) if prev is not None else None

    if klass in SINGLE_LOADS or klass in SINGLE_STORES:
        addr = _address_regs(insn)
        if klass in SINGLE_STORES and not _is_register_offset(insn):
            cost = 1                       # data phase overlaps the next instruction (write buffer)
        elif prev_class in SINGLE_LOADS and not writes_pc(prev) and not (addr & set(prev.regs_access()[1])):
            cost -= 1                      # pipelines behind the previous load
        if prev is not None and addr & set(prev.regs_access()[1]) - {arm.ARM_REG_PC}:
            cost += 1                      # address register written just before: no AGU forwarding
    elif klass == "it" and prev is not None and prev.size == 2 and prev_class != "it":
        cost = 0                           # folded onto the preceding 16-bit instruction
    if klass in SINGLE_LOADS and is_literal_load(insn):
        cost += LITERAL_CONTENTION         # shares the code bus with the instruction fetch
    cost += fp_result_stall(insn, prev)    # waits for the previous FPU result it reads

    taken = 0
    if writes_pc(insn):
        refill = BRANCH_REFILL_FORWARDED if branch_forwarded(insn, prev) else BRANCH_REFILL
        conditional = insn.cc not in (CC_ALWAYS, arm.ARM_CC_INVALID) or insn.insn_name() in ("cbz", "cbnz")
        if conditional:
            taken = refill                 # paid when the branch is taken (decided at run time)
        else:
            cost += refill
    return InsnCost(cost, taken, klass)


def branch_forwarded(insn, prev) -> bool:
    """True when the core issues the branch target's fetch from the decode stage (see BRANCH_REFILL)."""
    name, ops = insn.insn_name(), insn.operands
    immediate = bool(ops) and ops[0].type == arm.ARM_OP_IMM
    if name == "b":
        return immediate
    from_lr = name in ("bx", "blx", "mov") and insn.size == 2 and bool(ops) and \
        ops[-1].type == arm.ARM_OP_REG and ops[-1].reg == arm.ARM_REG_LR
    if not (from_lr or (name == "bl" and immediate)):
        return False
    return prev is None or arm.ARM_REG_LR not in prev.regs_access()[1]    # LR written just before: execute


def target_penalty(insn) -> int:
    """Extra refill when a taken branch lands on this instruction."""
    return UNALIGNED_TARGET if insn.size == 4 and insn.address % 4 == 2 else 0
