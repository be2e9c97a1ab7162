"""A regression with its own training loop: sklearn's bundled diabetes data (442 patients, 10 features),
an MLP trained on the mean squared error, reporting the validation RMSE and R2 each epoch.

Run it with `tunetui run studies/diabetes_loop.toml`; the spec names `diabetes_loop:train` as its loop.
"""

import torch
from sklearn.datasets import load_diabetes
from torch import nn


def train(ctx) -> None:
    x, y = (torch.tensor(a, dtype=torch.float32) for a in load_diabetes(return_X_y=True))
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))  # the same split every trial
    val, fit = order[:88], order[88:]
    mean, std = x[fit].mean(0), x[fit].std(0)
    x = ((x - mean) / std).to(ctx.device)
    y = y.to(ctx.device)
    y_mean, y_std = y[fit].mean(), y[fit].std()  # the model learns standardized targets
    width = int(ctx.params["width"])
    model = nn.Sequential(nn.Linear(10, width), nn.ReLU(), nn.Linear(width, 1)).to(ctx.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=ctx.params["lr"], weight_decay=ctx.params["weight_decay"])
    ctx.watch(model, optimizer)  # learning rate, gradient norms and histograms for the live plots
    for epoch in range(1, ctx.epochs + 1):
        model.train()
        shuffled = fit[torch.randperm(len(fit))]
        loss_sum = torch.zeros((), device=ctx.device)  # summed on the device: no host sync per step
        for start in range(0, len(shuffled), 32):
            rows = shuffled[start : start + 32]
            loss = nn.functional.mse_loss(model(x[rows]).squeeze(1), (y[rows] - y_mean) / y_std)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(rows)
        model.eval()
        with torch.no_grad():
            predicted = model(x[val]).squeeze(1) * y_std + y_mean
            mse = nn.functional.mse_loss(predicted, y[val])
            r2 = 1 - mse / y[val].var(unbiased=False)
        if ctx.report(epoch, {"train_loss": loss_sum / len(fit), "val_rmse": mse.sqrt(), "val_r2": r2}):
            return  # pruned or killed
