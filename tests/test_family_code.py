"""The family code each stage's cache key covers (``Family.code_parts``): model stages stop at
the modules only chains, parity, commands or an optional capability run; the chain stage covers
its chain modules and the model code of every family it links."""

from __future__ import annotations

import pytest

from ttskiln import fingerprint
from ttskiln.families import FAMILIES
from ttskiln.fingerprint import PACKAGE_ROOT, _imports, _module_file, module_closure


def _files(parts):
    return {str(p.relative_to(PACKAGE_ROOT)) for modules, stops in parts for p in module_closure(modules, stops)}


def _module_of(path):
    rel = path.relative_to(PACKAGE_ROOT.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_only_the_family_module_reaches_a_side_module(name):
    """A side module is cut from the model code only where the family's own module imports it
    (inside the method that dispatches to it): no model module imports one, so the model
    stages' hash leaves out no code they run."""
    family = FAMILIES[name]
    own = type(family).__module__
    side = {m for names in family.side_modules().values() for m in names}
    for module in side:
        assert _module_file(module) is not None, module
        assert module.startswith(f"{own}."), f"{module} is not in {own}"
    [(roots, stops)] = family.code_parts("model")
    assert set(stops) == side
    for path in module_closure(roots, stops):
        module = _module_of(path)
        if module == own:
            continue
        reached = sorted(set(_imports(module, path)) & side)
        assert not reached, f"{module} (model code) imports {reached}"


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_model_code_leaves_out_every_side_module(name):
    family = FAMILIES[name]
    model = _files(family.code_parts("model"))
    for kind, modules in family.side_modules().items():
        for module in modules:
            assert str(_module_file(module).relative_to(PACKAGE_ROOT)) not in model, (kind, module)
    # and keeps what the model stages run: the family module and its graphs
    assert str(_module_file(type(family).__module__).relative_to(PACKAGE_ROOT)) in model
    modules_file = f"families/{name}/modules.py"
    if (PACKAGE_ROOT / modules_file).is_file():
        assert modules_file in model


@pytest.mark.parametrize("name", sorted(n for n, f in FAMILIES.items() if f.chain_modules))
def test_chain_code_covers_its_modules_and_linked_model_code(name):
    family = FAMILIES[name]
    chain = _files(family.code_parts("chain"))
    side = family.side_modules()
    assert _files(family.code_parts("model")) <= chain
    for module in side["chain"]:
        assert str(_module_file(module).relative_to(PACKAGE_ROOT)) in chain
    for kind in ("parity", "commands", "tensorrt_llm", "ggml"):
        for module in side[kind]:
            assert str(_module_file(module).relative_to(PACKAGE_ROOT)) not in chain, (kind, module)
    for role in family.link_families:
        assert _files(family.linked_family(role).code_parts("model")) <= chain
    others = {n for n in FAMILIES if n != name and n not in family.link_families.values()}
    assert not {f for f in chain if any(f.startswith(f"families/{o}/") for o in others)}


def test_capability_code_adds_its_modules():
    for family in FAMILIES.values():
        model = _files(family.code_parts("model"))
        for kind in ("tensorrt_llm", "ggml"):
            modules = family.side_modules()[kind]
            if not modules:
                continue
            code = _files(family.code_parts(kind))
            assert model <= code
            assert {str(_module_file(m).relative_to(PACKAGE_ROOT)) for m in modules} <= code
            assert not {str(_module_file(m).relative_to(PACKAGE_ROOT)) for m in family.side_modules()["chain"]} & code


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="no family code kind"):
        FAMILIES["vocos"].code_parts("export")


def test_each_module_is_read_once_per_process():
    fingerprint.clear_cache()
    kinds = {n: ["model", *(k for k, m in f.side_modules().items() if m and k in ("chain", "tensorrt_llm", "ggml"))]
             for n, f in FAMILIES.items()}
    first = [fingerprint.parts_hash(FAMILIES[n].code_parts(k)) for n, ks in kinds.items() for k in ks]
    parsed = _imports.cache_info().misses
    assert parsed == _imports.cache_info().currsize  # no module parsed twice
    again = [fingerprint.parts_hash(FAMILIES[n].code_parts(k)) for n, ks in kinds.items() for k in ks]
    assert again == first and _imports.cache_info().misses == parsed
    assert len(set(first)) == len(first)  # each family and kind its own code
