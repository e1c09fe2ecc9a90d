"""HAI Registry from Python: a token, a data release, the analysis dataset, a Kaplan-Meier.

    pip install requests pandas lifelines
    HAI_URL=http://127.0.0.1:8000 HAI_USERNAME=investigator HAI_PASSWORD=demo-password-1 python quickstart.py

With `make run`'s demo registry the defaults work as they are. An investigator reads data releases, each
frozen at a data cut by the registry coordinator: name one to get the same answer next year.
"""

import io
import os
import sys

import pandas as pd
import requests
from lifelines import KaplanMeierFitter

URL = os.environ.get("HAI_URL", "http://127.0.0.1:8000").rstrip("/") + "/api/v1"
USERNAME = os.environ.get("HAI_USERNAME", "investigator")
PASSWORD = os.environ.get("HAI_PASSWORD", "demo-password-1")


def main():
    # 1. A token (12 hours). With two-factor authentication on, add "otp": the code from your app.
    answer = requests.post(f"{URL}/auth/token/", json={"username": USERNAME, "password": PASSWORD}, timeout=30)
    answer.raise_for_status()
    session = requests.Session()
    session.headers["Authorization"] = f"Token {answer.json()['token']}"

    # 2. The data releases, latest cut first. Pin the one your analysis uses.
    released = session.get(f"{URL}/releases/", timeout=30)
    released.raise_for_status()
    release = next(r for r in released.json() if r["latest"])
    print(f"release {release['name']} (cut {release['cut_year']}, checksum {release['checksum'][:12]}...)")
    print(f"  {release['row_counts']['implantations']} implantations")

    # 3. The analysis dataset: one row per implantation; booleans are 0/1, times whole days.
    dataset = session.get(f"{URL}/analysis-dataset/", params={"release": release["name"], "format": "csv"}, timeout=120)
    dataset.raise_for_status()
    table = pd.read_csv(io.BytesIO(dataset.content))
    dictionary = pd.DataFrame(session.get(f"{URL}/analysis-dataset/dictionary/", timeout=30).json())
    print(f"  {len(table)} rows, {len(table.columns)} columns; e.g.")
    print(dictionary.set_index("column").loc[["os_days", "os_event", "entry_day"], ["type", "unit"]].to_string())

    # 4. Overall survival from the first implantation, one row per patient (os_days is empty on a replacement
    #    pump's row), with delayed entry: a patient is at risk from the start of the day of registry consent.
    patients = table.dropna(subset=["os_days"])
    km = KaplanMeierFitter().fit(
        patients["os_days"], event_observed=patients["os_event"], entry=patients["entry_day"] - 0.5
    )
    print(
        f"overall survival: n={len(patients)}, deaths={int(patients['os_event'].sum())}, "
        f"median {km.median_survival_time_:.0f} days"
    )

    # 5. The registry's own statistic on the same release agrees.
    stats = session.get(
        f"{URL}/stats/survival/", params={"release": release["name"], "endpoint": "overall"}, timeout=60
    )
    stats.raise_for_status()
    (overall,) = stats.json()["groups"]
    print(f"the registry's survival endpoint: n={overall['n']}, median {overall['median_days']:.0f} days")
    by_treatment = patients.groupby("treated")["os_event"].agg(["count", "sum"])
    print("deaths by whether the pump was ever used (treated 0/1):")
    print(by_treatment.rename(columns={"count": "patients", "sum": "deaths"}).to_string())
    if overall["n"] != len(patients) or abs(km.median_survival_time_ - overall["median_days"]) > 1e-6:
        sys.exit("The dataset and the survival endpoint disagree.")


if __name__ == "__main__":
    main()
