"""The native cycle hook: a Numba cfunc registered with Unicorn as a UC_HOOK_BLOCK callback.

Per executed block it adds the block's static cost (a prefix-sum difference), the taken-branch
refill when control did not fall through, and flash wait states through the ART model. No Python
runs on the hot path.
"""
from __future__ import annotations

import ctypes

import numba as nb
from llvmlite import ir
from numba import types
from numba.core.extending import intrinsic
from unicorn.unicorn_py3.unicorn import uclib

from . import state as S

#: address of Unicorn's uc_emu_stop; stored in the state array at run time so the cfunc stays cacheable
UC_EMU_STOP_ADDRESS = ctypes.cast(uclib.uc_emu_stop, ctypes.c_void_p).value


@intrinsic
def _call_stop(typingctx, fn_address, uc):
    """Call `int uc_emu_stop(uc_engine*)` through an address held in an int64."""
    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(32), [ir.IntType(8).as_pointer()])
        builder.call(builder.inttoptr(args[0], fnty.as_pointer()), [args[1]])
        return context.get_dummy_value()
    return types.void(types.int64, types.voidptr), codegen

_SIG = types.void(types.voidptr, types.uint64, types.uint32, types.CPointer(types.int64))


@nb.njit(cache=True, inline="always")
def _fetch_from_flash(full, st, start, end, jumped, ws):
    """Walk the block's flash words through the ART I-cache; returns the wait-state stall cycles.
    A miss on the word a branch landed on costs the full wait states; a sequential miss costs what
    the prefetcher could not hide while the previous word executed."""
    wshift = st[S.WORD_SHIFT]
    per_line = st[S.LINE_SHIFT] - wshift
    base_w = st[S.CODE_LO] >> wshift
    w0 = start >> wshift
    w1 = (end - 1) >> wshift
    line_mask = st[S.ICACHE_LINES] - 1
    ot = st[S.OFF_TAGS]
    om = st[S.OFF_MASK]
    stall = nb.int64(0)
    for w in range(w0, w1 + 1):
        line = w >> per_line
        slot = line & line_mask
        bit = nb.int64(1) << (w & ((nb.int64(1) << per_line) - 1))
        if full[ot + slot] != line:
            full[ot + slot] = line
            full[om + slot] = 0
        if full[om + slot] & bit == 0:
            full[om + slot] |= bit
            st[S.ICACHE_GEN] += 1
            if w == w0 and jumped:
                stall += ws
            else:
                stall += full[st[S.OFF_SEQ] + w - base_w]
    return stall


@nb.njit(cache=True, inline="always")
def _literal_loads(full, st, hs, he, ws):
    """PC-relative literal loads of the block go through the ART data cache; a miss costs the wait states."""
    ol = st[S.OFF_LIT]
    olen = st[S.OFF_LEN]
    od = st[S.OFF_DTAGS]
    shift = st[S.DLINE_SHIFT]
    mask = st[S.DCACHE_LINES] - 1
    stall = nb.int64(0)
    h = hs
    while h < he:
        address = full[ol + h]
        if address != 0:
            line = address >> shift
            if full[od + (line & mask)] != line:
                full[od + (line & mask)] = line
                stall += ws
        step = full[olen + h]
        h += step if step > 0 else 1
    return stall


@nb.cfunc(_SIG, nopython=True, cache=True)
def block_hook(uc, address, size, user_data):
    st = nb.carray(user_data, (S.HEADER,))
    code_lo = st[S.CODE_LO]
    start = nb.int64(address)
    end = start + nb.int64(size)
    hs = (start - code_lo) >> 1
    he = (end - code_lo) >> 1
    n_hw = st[S.CODE_HW]
    full = nb.carray(user_data, (st[S.OFF_DTAGS] + st[S.DCACHE_LINES],))
    st[S.BLOCKS] += 1
    if hs < 0 or he > n_hw:                       # code the decoder never saw (e.g. copied to SRAM)
        st[S.UNKNOWN_BLOCKS] += 1
        st[S.CYCLES] += size >> 1
        st[S.INSNS] += size >> 1
        st[S.PREV_END] = end
        return
    oc = st[S.OFF_COST]
    cycles = full[oc + he] - full[oc + hs]
    on = st[S.OFF_NINS]
    st[S.INSNS] += full[on + he] - full[on + hs]

    jumped = start != st[S.PREV_END]
    if jumped:
        pe = (st[S.PREV_END] - code_lo) >> 1
        penalty = full[st[S.OFF_TARGET] + hs]
        charged_at = hs                               # the profile's halfword for the penalty
        if 0 <= pe <= n_hw:
            taken = full[st[S.OFF_TAKEN] + pe]
            penalty += taken
            if taken > 0:
                st[S.TAKEN_BRANCHES] += 1
                wide = pe >= 2 and full[st[S.OFF_LEN] + pe - 2] == 2
                charged_at = pe - (2 if wide else 1)  # the refill, target alignment included: the branch's
        if st[S.PROFILE] != 0:
            full[st[S.OFF_EXTRA] + charged_at] += penalty
        cycles += penalty

    ws = st[S.WAIT_STATES]
    if ws > 0 and st[S.FLASH_LO] <= start < st[S.FLASH_HI]:
        # Fast path: nothing was filled into the I-cache since this block last found all its words there.
        ov = st[S.OFF_VERIFIED] + hs
        if full[ov] != st[S.ICACHE_GEN]:
            stall = _fetch_from_flash(full, st, start, end, jumped, ws)
            if stall == 0:
                full[ov] = st[S.ICACHE_GEN]
            else:
                st[S.FLASH_STALLS] += stall
                cycles += stall
                if st[S.PROFILE] != 0:
                    full[st[S.OFF_EXTRA] + hs] += stall

        olc = st[S.OFF_LIT_COUNT]
        if full[olc + he] != full[olc + hs]:
            stall = _literal_loads(full, st, hs, he, ws)
            st[S.LITERAL_STALLS] += stall
            st[S.FLASH_STALLS] += stall
            cycles += stall
            if st[S.PROFILE] != 0:                    # to the block, with its fetch stalls
                full[st[S.OFF_EXTRA] + hs] += stall

    if st[S.PROFILE] != 0:
        ol = st[S.OFF_LEN]
        cnt = st[S.OFF_COUNT]
        h = hs
        while h < he:
            full[cnt + h] += 1
            step = full[ol + h]
            h += step if step > 0 else 1

    st[S.CYCLES] += cycles
    st[S.PREV_END] = end
    st[S.BLOCK_END] = end
    if st[S.CYCLES] >= st[S.BUDGET]:
        st[S.STOPPED] = 1
        _call_stop(st[S.STOP_FN], uc)


BLOCK_HOOK_ADDRESS = block_hook.address
