"""Run-mode power of a board as a model: the datasheet's supply current at several clocks, as data.

A board's `[power]` section lists typical run currents (code from flash, flash accelerator on) at the
clocks where the datasheet measured them. The current at a clock is read off that table (straight lines
between neighbouring points, the nearest segment extended outside it, which the estimate says). It is
split into a static part, the intercept of the least-squares line through the table (the current that
does not scale with the clock: leakage, regulator, oscillators), and a part per cycle, the rest divided
by the clock. So the energy of a run = cycles x energy per cycle + static power x time, and at the
table's clocks it equals the datasheet's current x supply x time. With a single point the static part
is 0. There is no separate term for memory traffic or for the instruction mix: the datasheet's figures
are for its own benchmark code (an assumption, stated in every estimate)."""
from dataclasses import dataclass

ASSUMPTION = ("assumes the vendor's typical current for its own benchmark code (25 C) holds for this code: "
              "no term for memory traffic or instruction mix")


@dataclass(frozen=True)
class Estimate:
    """Power and energy of a run of `cycles` cycles at `mhz`, split into the terms of the model."""
    mhz: float
    current_ma: float
    power_mw: float
    nj_per_cycle: float         # supply x slope: the part that scales with the work
    static_mw: float            # supply x intercept: the part that scales with time
    extrapolated: bool          # the clock lies outside the datasheet's table

    def energy_uj(self, cycles: float) -> float:
        """cycles x energy per cycle + static power x time (uJ)."""
        return cycles * self.nj_per_cycle / 1e3 + self.static_mw * cycles / self.mhz / 1e3


@dataclass(frozen=True)
class PowerModel:
    supply_v: float
    points: tuple[tuple[float, float], ...]    # (MHz, mA), ascending in MHz (checked by the board file's schema)
    source: str

    def static_ma(self) -> float:
        """Intercept of the least-squares line through the table, kept within 0 and the smallest current."""
        if len(self.points) < 2:
            return 0.0
        n = len(self.points)
        mf = sum(f for f, _ in self.points) / n
        mi = sum(i for _, i in self.points) / n
        slope = sum((f - mf) * (i - mi) for f, i in self.points) / sum((f - mf) ** 2 for f, _ in self.points)
        return min(max(mi - slope * mf, 0.0), min(i for _, i in self.points))

    def at(self, mhz: float) -> Estimate:
        """The model at this core clock."""
        pts = self.points
        if len(pts) == 1:                       # one figure: current proportional to the clock
            current = pts[0][1] * mhz / pts[0][0]
        else:
            k = next((j for j in range(1, len(pts) - 1) if mhz <= pts[j][0]), len(pts) - 1)
            (f0, i0), (f1, i1) = pts[k - 1], pts[k]
            current = i0 + (i1 - i0) * (mhz - f0) / (f1 - f0)
        static = self.static_ma()
        return Estimate(mhz=mhz, current_ma=current, power_mw=self.supply_v * current,
                        nj_per_cycle=self.supply_v * (current - static) / mhz, static_mw=self.supply_v * static,
                        extrapolated=not pts[0][0] <= mhz <= pts[-1][0])

    def describe(self, mhz: float) -> str:
        """The provenance line of an estimate at this clock."""
        e = self.at(mhz)
        where = " (extrapolated beyond its clocks)" if e.extrapolated else ""
        return (f"model: {e.current_ma:.2f} mA at {mhz:g} MHz x {self.supply_v:g} V = {e.power_mw:.1f} mW "
                f"({e.nj_per_cycle:.3f} nJ per cycle + {e.static_mw:.1f} mW static), from {self.source}{where}; "
                f"{ASSUMPTION}")
