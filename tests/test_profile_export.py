"""`mcusim profile` with source lines: the annotated listing of one function and the callgrind export,
and `mcusim plan --profile` for a training step."""
import re

from mcusim.cli import main


def test_annotated_listing_and_callgrind(basics_elf, tmp_path, capsys):
    out = tmp_path / "p.callgrind"
    assert main(["profile", str(basics_elf), "--call", "uses_stack", "--arg", "20", "--annotate", "uses_stack",
                 "--callgrind", str(out)]) == 0
    listing = capsys.readouterr().out
    assert "basics.c:42: for (int i = 0; i < 1000; i++)" in listing          # the source line before its code
    rows = [line.split() for line in listing.splitlines() if line.startswith("0x")]
    assert rows and sum(int(r[2]) for r in rows) == int(listing.split()[1])   # cycles add up to the function's
    text = out.read_text()
    assert text.startswith("# callgrind format") and "events: Cycles Instructions" in text
    cost_lines = [line for line in text.splitlines() if re.fullmatch(r"\d+ \d+ \d+", line)]
    summary = int(re.search(r"summary: (\d+)", text).group(1))
    assert sum(int(line.split()[1]) for line in cost_lines) == summary      # every cycle attributed to a line
    assert main(["profile", str(basics_elf), "--call", "uses_stack", "--arg", "1", "--annotate", "nope"]) == 2


def test_plan_profiles_the_training_step(tmp_path):
    out = tmp_path / "step.callgrind"
    assert main(["plan", "cnn_digits", "--profile", str(out)]) == 0
    text = out.read_text()
    assert "cmd: step_sample" in text and "fn=conv2d_u8_forward" in text and "cfn=" in text
    # the kernels' inlined helpers cost lines in the public header, not in the calling kernel's file
    assert re.search(r"^fi=.*kernels/include/nn\.h$", text, re.M)
