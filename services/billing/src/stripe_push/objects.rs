//! The Stripe objects of one push: the customer, its subscription and plan,
//! the invoice items and the invoice, each looked for before it is created.

use super::*;

impl Billing {
    /// One attempt at pushing an invoice; returns the Stripe invoice id.
    pub(super) async fn push(
        &self,
        sync: &StripeSync,
        inv: &invoice::Model,
    ) -> Result<String, PushError> {
        let view: InvoiceView = inv.clone().try_into()?;
        let tenant: TenantId = view.tenant_id;
        let currency = view.currency.to_ascii_lowercase();
        let cur: stripe_types::Currency = currency
            .parse()
            .map_err(|_| PushError::Fail(format!("Stripe does not know currency {currency}")))?;
        let base_fee: i64 = view
            .lines
            .iter()
            .filter(|l| l.meter.is_none() && !l.adjustment)
            .map(|l| l.amount_minor)
            .sum();
        let customer = self.ensure_customer(sync, tenant).await?;
        let sub = self
            .ensure_subscription(sync, &customer, &view.plan_id, &currency, &cur, base_fee)
            .await?;
        let recorded: HashMap<String, String> = stripe_object::Entity::find()
            .filter(stripe_object::Column::InvoiceId.eq(inv.id.clone()))
            .all(self.db())
            .await?
            .into_iter()
            .map(|o| (o.key, o.stripe_id))
            .collect();
        let description = format!(
            "llmops invoice {} ({} to {})",
            inv.id,
            view.period_start.format("%Y-%m-%d"),
            view.period_end.format("%Y-%m-%d")
        );
        let stripe_inv = match recorded.get("invoice") {
            Some(id) => Some(id.clone()),
            None => {
                let found = self
                    .find_invoice(sync, &customer.customer_id, &inv.id, &description)
                    .await?;
                if let Some(id) = &found {
                    self.record(&inv.id, "invoice", id).await?;
                }
                found
            }
        };
        let stripe_inv = match stripe_inv {
            Some(id) => id,
            None => {
                self.push_items(sync, inv, &view, &customer.customer_id, &cur, &recorded)
                    .await?;
                let created: Obj = CreateInvoice::new()
                    .customer(customer.customer_id.clone())
                    .subscription(sub.clone())
                    .description(description.clone())
                    .metadata(meta(&[("llmops_invoice_id", &inv.id)]))
                    .pending_invoice_items_behavior(
                        CreateInvoicePendingInvoiceItemsBehavior::Include,
                    )
                    .build()
                    .customize()
                    .request_strategy(key(format!("llmops-{}-invoice", inv.id))?)
                    .timeout(CALL_TIMEOUT)
                    .send(&sync.client)
                    .await?;
                failpoint("stripe-invoice-created");
                self.record(&inv.id, "invoice", &created.id).await?;
                // The base fee is on this invoice where the server puts the
                // subscription's fee on an invoice created for it
                // (localstripe); Stripe bills it on the subscription's own
                // cycle instead, and this invoice carries the usage.
                let expected = if created.has_subscription_line() {
                    view.total_minor
                } else {
                    view.total_minor - base_fee
                };
                if let Some(total) = created.total
                    && total != std::cmp::max(expected, 0)
                {
                    return Err(PushError::Fail(format!(
                        "Stripe invoice {} totals {total}, expected {expected}",
                        created.id
                    )));
                }
                created.id
            }
        };
        self.finalize(sync, &inv.id, &stripe_inv).await?;
        Ok(stripe_inv)
    }

    /// Invoice items for the usage lines not yet at Stripe.
    pub(super) async fn push_items(
        &self,
        sync: &StripeSync,
        inv: &invoice::Model,
        view: &InvoiceView,
        customer: &str,
        cur: &stripe_types::Currency,
        recorded: &HashMap<String, String>,
    ) -> Result<(), PushError> {
        let mut at_stripe: Option<Vec<Obj>> = None;
        for (i, line) in view.lines.iter().enumerate() {
            if (line.meter.is_none() && !line.adjustment) || line.amount_minor == 0 {
                continue;
            }
            let k = format!("line:{i}");
            if recorded.contains_key(&k) {
                continue;
            }
            let idx = i.to_string();
            // Created by an attempt that crashed before recording it? The
            // customer's items of this invoice, listed once per attempt.
            // Not `pending=true`: localstripe refuses the parameter (and
            // lists only pending items anyway).
            if at_stripe.is_none() {
                let mut ours = Vec::new();
                walk_list(
                    sync,
                    |after| {
                        let mut req = ListInvoiceItem::new()
                            .customer(customer.to_string())
                            .limit(100);
                        if let Some(a) = after {
                            req = req.starting_after(a);
                        }
                        req.build()
                    },
                    |o| {
                        if o.meta_is("llmops_invoice_id", &inv.id) {
                            ours.push(o);
                        }
                        false
                    },
                )
                .await?;
                at_stripe = Some(ours);
            }
            let existing = at_stripe
                .iter()
                .flatten()
                .find(|o| o.meta_is("llmops_line", &idx));
            let id = match existing {
                Some(o) => o.id.clone(),
                None => {
                    let created: Obj = CreateInvoiceItem::new()
                        .customer(customer.to_string())
                        .amount(line.amount_minor)
                        .currency(cur.clone())
                        .description(line.description.clone())
                        .metadata(meta(&[
                            ("llmops_invoice_id", &inv.id),
                            ("llmops_line", &idx),
                        ]))
                        .build()
                        .customize()
                        .request_strategy(key(format!("llmops-{}-line-{i}", inv.id))?)
                        .timeout(CALL_TIMEOUT)
                        .send(&sync.client)
                        .await?;
                    failpoint("stripe-item-created");
                    created.id
                }
            };
            self.record(&inv.id, &k, &id).await?;
        }
        Ok(())
    }

    /// A Stripe invoice an earlier attempt created for ours, if any: by
    /// metadata where the server keeps it, or by description (localstripe
    /// drops an invoice's metadata on create).
    pub(super) async fn find_invoice(
        &self,
        sync: &StripeSync,
        customer: &str,
        ours: &str,
        description: &str,
    ) -> Result<Option<String>, PushError> {
        let found = find_in_list(
            sync,
            |after| {
                let mut req = ListInvoice::new().customer(customer.to_string()).limit(100);
                if let Some(a) = after {
                    req = req.starting_after(a);
                }
                req.build()
            },
            |i| {
                i.meta_is("llmops_invoice_id", ours)
                    || i.description.as_deref() == Some(description)
            },
        )
        .await?;
        Ok(found.map(|i| i.id))
    }

    /// Finalizes a draft Stripe invoice (a finalized one is left alone).
    pub(super) async fn finalize(
        &self,
        sync: &StripeSync,
        ours: &str,
        id: &str,
    ) -> Result<(), PushError> {
        let current: Obj = stripe_billing::invoice::RetrieveInvoice::new(id.to_string())
            .build()
            .customize()
            .timeout(CALL_TIMEOUT)
            .send(&sync.client)
            .await?;
        if current.status.as_deref() != Some("draft") {
            return Ok(());
        }
        let done: Obj = FinalizeInvoiceInvoice::new(id.to_string())
            .build()
            .customize()
            .request_strategy(key(format!("llmops-{ours}-finalize"))?)
            .timeout(CALL_TIMEOUT)
            .send(&sync.client)
            .await?;
        if done.status.as_deref() == Some("draft") {
            return Err(PushError::Retry(format!(
                "Stripe invoice {id} is still a draft"
            )));
        }
        Ok(())
    }

    /// The tenant's Stripe customer: recorded, found by metadata, or created.
    pub(super) async fn ensure_customer(
        &self,
        sync: &StripeSync,
        tenant: TenantId,
    ) -> Result<stripe_customer::Model, PushError> {
        if let Some(c) = stripe_customer::Entity::find_by_id(tenant.to_string())
            .one(self.db())
            .await?
        {
            return Ok(c);
        }
        let t = store::get_tenant(self.db(), tenant).await?;
        let tid = tenant.to_string();
        // Stripe's search finds the customer an interrupted attempt made
        // (its index lags by up to a minute, but within a day the
        // idempotency key returns the same customer anyway); servers
        // without search (localstripe) get the list scanned.
        let searched = SearchCustomer::new(format!("metadata['llmops_tenant_id']:'{tid}'"))
            .build()
            .customize::<ObjList>()
            .timeout(CALL_TIMEOUT)
            .send(&sync.client)
            .await;
        let found = match searched {
            Ok(list) => list
                .data
                .into_iter()
                .find(|c| c.meta_is("llmops_tenant_id", &tid)),
            Err(StripeError::Stripe(_, 404)) => {
                find_in_list(
                    sync,
                    |after| {
                        let mut req = ListCustomer::new().limit(100);
                        if let Some(a) = after {
                            req = req.starting_after(a);
                        }
                        req.build()
                    },
                    |c| c.meta_is("llmops_tenant_id", &tid),
                )
                .await?
            }
            Err(e) => return Err(e.into()),
        };
        let id = match found {
            Some(c) => c.id,
            None => {
                let c: Obj = CreateCustomer::new()
                    .name(t.name.clone())
                    .metadata(meta(&[("llmops_tenant_id", &tid)]))
                    .build()
                    .customize()
                    .request_strategy(key(format!("llmops-customer-{tid}"))?)
                    .timeout(CALL_TIMEOUT)
                    .send(&sync.client)
                    .await?;
                failpoint("stripe-customer-created");
                c.id
            }
        };
        let now = Utc::now();
        let row = stripe_customer::ActiveModel {
            tenant_id: Set(tid.clone()),
            customer_id: Set(id),
            subscription_id: Set(None),
            stripe_plan_id: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        };
        match row.insert(self.db()).await {
            Ok(m) => Ok(m),
            Err(e) if is_unique_violation(&e) => stripe_customer::Entity::find_by_id(tid)
                .one(self.db())
                .await?
                .ok_or_else(|| PushError::Retry("stripe customer row vanished".into())),
            Err(e) => Err(e.into()),
        }
    }

    /// The customer's subscription to the Stripe plan carrying the base fee.
    pub(super) async fn ensure_subscription(
        &self,
        sync: &StripeSync,
        customer: &stripe_customer::Model,
        plan_id: &str,
        currency: &str,
        cur: &stripe_types::Currency,
        base_fee: i64,
    ) -> Result<String, PushError> {
        // Stripe plans' amounts are immutable: a new fee is a new plan.
        let stripe_plan = format!("llmops-{plan_id}-{currency}-{base_fee}");
        if let (Some(sub), Some(p)) = (&customer.subscription_id, &customer.stripe_plan_id) {
            if *p == stripe_plan {
                return Ok(sub.clone());
            }
            // A new base fee is a new subscription: the old one ends now,
            // without proration (our invoices bill the fee per period).
            // Not an update of the old one: that prorates at Stripe (and
            // localstripe credits every earlier invoice).
            match CancelSubscription::new(sub.clone())
                .build()
                .customize::<Obj>()
                .request_strategy(key(format!("llmops-cancel-{sub}"))?)
                .timeout(CALL_TIMEOUT)
                .send(&sync.client)
                .await
            {
                Ok(_) | Err(StripeError::Stripe(_, 404)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.ensure_plan(sync, &stripe_plan, plan_id, cur, base_fee)
            .await?;
        let tid = customer.tenant_id.clone();
        let existing = find_in_list(
            sync,
            |after| {
                let mut req = ListSubscription::new()
                    .customer(customer.customer_id.clone())
                    .limit(100);
                if let Some(a) = after {
                    req = req.starting_after(a);
                }
                req.build()
            },
            |s| {
                s.meta_is("llmops_tenant_id", &tid) && s.meta_is("llmops_stripe_plan", &stripe_plan)
            },
        )
        .await?;
        let sub = match existing {
            Some(s) => s.id,
            None => {
                // The base fee is billed in arrears on our invoices: a trial
                // keeps Stripe from charging it up front at creation.
                let trial_end = (Utc::now() + Duration::hours(1)).timestamp();
                let mut item = CreateSubscriptionItems::new();
                item.plan = Some(stripe_plan.clone());
                let s: Obj = CreateSubscription::new()
                    .customer(customer.customer_id.clone())
                    .items(vec![item])
                    .trial_end(CreateSubscriptionTrialEnd::Timestamp(trial_end))
                    .metadata(meta(&[
                        ("llmops_tenant_id", &tid),
                        ("llmops_stripe_plan", &stripe_plan),
                    ]))
                    .build()
                    .customize()
                    .request_strategy(key(format!("llmops-subscription-{tid}-{stripe_plan}"))?)
                    .timeout(CALL_TIMEOUT)
                    .send(&sync.client)
                    .await?;
                s.id
            }
        };
        stripe_customer::Entity::update_many()
            .col_expr(
                stripe_customer::Column::SubscriptionId,
                Expr::value(sub.clone()),
            )
            .col_expr(
                stripe_customer::Column::StripePlanId,
                Expr::value(stripe_plan),
            )
            .col_expr(stripe_customer::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(stripe_customer::Column::TenantId.eq(tid))
            .exec(self.db())
            .await?;
        Ok(sub)
    }

    pub(super) async fn ensure_plan(
        &self,
        sync: &StripeSync,
        stripe_plan: &str,
        plan_id: &str,
        cur: &stripe_types::Currency,
        base_fee: i64,
    ) -> Result<(), PushError> {
        let retrieve = || {
            RetrievePlan::new(stripe_plan.to_string())
                .build()
                .customize::<Obj>()
                .timeout(CALL_TIMEOUT)
                .send(&sync.client)
        };
        match retrieve().await {
            Ok(_) => return Ok(()),
            Err(StripeError::Stripe(_, 404)) => {}
            Err(e) => return Err(e.into()),
        }
        let created = CreatePlan::new(cur.clone(), stripe_billing::PlanInterval::Month)
            .id(stripe_plan.to_string())
            .amount(base_fee)
            .product(CreatePlanProduct::InlineProductParams(
                CreatePlanInlineProductParams::new(format!("{plan_id} base fee")),
            ))
            .build()
            .customize::<Obj>()
            .request_strategy(key(format!("llmops-plan-{stripe_plan}"))?)
            .timeout(CALL_TIMEOUT)
            .send(&sync.client)
            .await;
        match created {
            Ok(_) => Ok(()),
            // Created meanwhile by another push: fine if it is there now.
            Err(e) => retrieve().await.map(|_| ()).map_err(|_| e.into()),
        }
    }
}
